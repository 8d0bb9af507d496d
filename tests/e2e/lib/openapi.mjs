// openapi.mjs - docs/api/openapi.yaml for the tests: the redocly CLI, and the spec bundled as
// JSON (so that no YAML parser is needed here) with $ref lookup.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const root = resolve(here, '..', '..');
const apiDir = join(root, 'docs', 'api');
export const spec = join(apiDir, 'openapi.yaml');
export const config = join(apiDir, 'redocly.yaml');
const redocly = join(here, 'node_modules', '.bin', 'redocly');

// Keep the CLI offline and quiet: no usage data, no update checks.
const env = {
    ...process.env,
    REDOCLY_TELEMETRY: 'off',
    REDOCLY_SUPPRESS_NOTIFICATIONS: 'true',
    REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
};

export function runRedocly(args) {
    assert.ok(existsSync(redocly),
        `${redocly} is missing; run "npm ci" in tests/e2e to install the dev dependencies`);
    const r = spawnSync(redocly, args, {
        cwd: apiDir, env, encoding: 'utf8', timeout: 120000, maxBuffer: 16 << 20,
    });
    if (r.error) {
        throw r.error;
    }
    return r;
}

// The spec as JSON, produced by the same CLI.
let bundled;
export function bundle() {
    if (bundled) {
        return bundled;
    }
    const r = runRedocly(['bundle', '--config', config, '--ext', 'json', spec]);
    assert.equal(r.status, 0, `redocly bundle failed:\n${r.stderr}`);
    bundled = JSON.parse(r.stdout);
    return bundled;
}

export function deref(doc, obj) {
    let cur = obj;
    while (cur && typeof cur.$ref === 'string') {
        assert.ok(cur.$ref.startsWith('#/'), `external $ref ${cur.$ref}`);
        cur = cur.$ref.slice(2).split('/')
            .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
            .reduce((o, k) => o?.[k], doc);
        assert.ok(cur, `dangling $ref ${obj.$ref}`);
    }
    return cur;
}

/* A validator (ajv) for one of the spec's component schemas. */
let ajv;
export function validator(name) {
    if (!ajv) {
        const require = createRequire(import.meta.url);
        const Ajv2020 = require('ajv/dist/2020').default;
        const addFormats = require('ajv-formats');
        ajv = new Ajv2020({ strict: false, allErrors: true });
        addFormats(ajv);
        // OpenAPI's own keywords that JSON Schema does not know.
        ajv.addKeyword('example');
        ajv.addSchema({ $id: 'openapi', components: bundle().components });
    }
    return ajv.getSchema(`openapi#/components/schemas/${name}`);
}
