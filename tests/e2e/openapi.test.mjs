// openapi.test.mjs - lint docs/api/openapi.yaml and check it against the issue-2 contract
// and the decision-trace routes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundle, config, deref, runRedocly, spec } from './lib/openapi.mjs';

test('redocly lint reports no errors and no warnings', () => {
    const r = runRedocly(['lint', '--config', config, '--lint-config', 'error',
        '--format', 'json', spec]);
    let report;
    try {
        report = JSON.parse(r.stdout);
    } catch {
        assert.fail(`redocly lint exited ${r.status} without a JSON report:\n`
            + `${r.stdout}\n${r.stderr}`);
    }
    const lines = report.problems.map((p) =>
        `${p.severity} ${p.ruleId} at ${p.location?.[0]?.pointer ?? '?'}: ${p.message}`);
    assert.equal(report.totals.errors, 0, lines.join('\n'));
    assert.equal(report.totals.warnings, 0, lines.join('\n'));
    assert.equal(r.status, 0, r.stderr);
});

test('every contract route is described, with the right security', () => {
    const doc = bundle();
    assert.match(doc.openapi, /^3\.1\./);
    assert.equal(doc.info.version, '0.1.0');
    assert.deepEqual(doc.security, [{ bearerAuth: [] }]);
    const scheme = doc.components.securitySchemes.bearerAuth;
    assert.equal(scheme.type, 'http');
    assert.equal(scheme.scheme, 'bearer');

    const routes = [
        ['get', '/healthz'],
        ['get', '/metrics'],
        ['post', '/api/v0/heartbeats'],
        ['get', '/api/v0/agents'],
        ['get', '/api/v0/agents/{agent_id}'],
        ['get', '/api/v0/agents/{agent_id}/heartbeats'],
        ['get', '/api/v0/agents/{agent_id}/rollups'],
        ['post', '/api/v0/traces'],
        ['get', '/api/v0/executions'],
        ['get', '/api/v0/executions/{execution_id}'],
        ['patch', '/api/v0/executions/{execution_id}'],
        ['get', '/api/v0/executions/{execution_id}/decisions'],
        ['get', '/api/v0/executions/{execution_id}/export'],
        ['get', '/api/v0/audit'],
        ['get', '/api/v0/audit/verify'],
        ['get', '/api/v0/debug/health'],
    ];
    const described = Object.entries(doc.paths).flatMap(([path, item]) =>
        Object.keys(item).filter((k) => k !== 'parameters').map((m) => `${m} ${path}`));
    assert.deepEqual(described.sort(), routes.map(([m, p]) => `${m} ${p}`).sort());

    for (const [method, path] of routes) {
        const op = doc.paths[path][method];
        const codes = Object.keys(op.responses);
        assert.ok(codes.includes('200'), `${method} ${path}: no 200`);
        assert.ok(codes.includes('405'), `${method} ${path}: no 405`);
        if (path === '/healthz') {
            assert.deepEqual(op.security, [], 'GET /healthz must not need a token');
        } else {
            assert.equal(op.security, undefined, `${method} ${path} overrides security`);
            assert.ok(codes.includes('401'), `${method} ${path}: no 401`);
        }
    }
    for (const path of ['/api/v0/agents/{agent_id}', '/api/v0/agents/{agent_id}/heartbeats',
        '/api/v0/agents/{agent_id}/rollups',
        '/api/v0/executions/{execution_id}', '/api/v0/executions/{execution_id}/decisions',
        '/api/v0/executions/{execution_id}/export']) {
        assert.ok(doc.paths[path].get.responses['404'], `GET ${path}: no 404`);
    }
    for (const path of ['/api/v0/heartbeats', '/api/v0/traces']) {
        const post = doc.paths[path].post.responses;
        for (const code of ['400', '413', '415', '503']) {
            assert.ok(post[code], `POST ${path}: no ${code}`);
        }
    }
});

test('error responses carry the contract codes and headers', () => {
    const doc = bundle();
    const error = doc.components.schemas.Error.properties.error;
    assert.deepEqual([...error.required].sort(), ['code', 'message']);
    assert.deepEqual([...error.properties.code.enum].sort(), [
        'conflict', 'empty_body', 'forbidden', 'internal', 'invalid_field', 'invalid_parameter', 'invalid_token',
        'length_required', 'malformed_json', 'method_not_allowed', 'not_found', 'payload_too_large',
        'store_unavailable', 'too_deep', 'unauthorized', 'unsupported_media_type',
    ]);
    for (const k of ['field', 'line', 'column']) {
        assert.ok(error.properties[k], `Error lacks optional ${k}`);
    }

    const r = doc.components.responses;
    assert.ok(r.Unauthorized.headers['WWW-Authenticate']);
    assert.ok(r.MethodNotAllowed.headers.Allow);
    assert.ok(r.StoreUnavailable.headers['Retry-After']);
});

test('heartbeat schema matches the contract limits', () => {
    const doc = bundle();
    const s = doc.components.schemas;
    const hb = s.Heartbeat;
    assert.equal(hb.additionalProperties, false);
    assert.deepEqual([...hb.required].sort(), ['agent_id', 'status']);
    assert.deepEqual(Object.keys(hb.properties).sort(), [
        'agent_id', 'child_agent_ids', 'labels', 'metrics', 'name', 'parent_agent_id',
        'schema_version', 'status', 'timestamp',
    ]);

    const id = deref(doc, hb.properties.agent_id);
    assert.equal(id.minLength, 1);
    assert.equal(id.maxLength, 128);
    const re = new RegExp(id.pattern);
    for (const ok of ['researcher-1', 'a', 'team.x:worker_2', 'x'.repeat(128)]) {
        assert.ok(re.test(ok), ok);
    }
    for (const bad of ['', 'has space', 'slash/no', 'é']) {
        assert.ok(!re.test(bad), bad);
    }

    assert.deepEqual(deref(doc, hb.properties.status).enum,
        ['idle', 'processing', 'waiting', 'error', 'complete']);

    const m = deref(doc, hb.properties.metrics);
    assert.equal(m.additionalProperties, false);
    assert.equal(m.required, undefined, 'every metric is optional');
    const ranges = {
        cpu_pct: [0, 100], mem_pct: [0, 100], tokens_per_min: [0, undefined],
        cost_usd: [0, undefined], confidence: [0, 100],
    };
    assert.deepEqual(Object.keys(m.properties).sort(), Object.keys(ranges).sort());
    for (const [k, [min, max]] of Object.entries(ranges)) {
        assert.deepEqual(m.properties[k].type, ['number', 'null'], k);
        assert.equal(m.properties[k].minimum, min, k);
        assert.equal(m.properties[k].maximum, max, k);
    }

    assert.equal(hb.properties.child_agent_ids.maxItems, 1000);
    assert.equal(hb.properties.name.maxLength, 256);
    assert.equal(hb.properties.timestamp.format, 'date-time');
    assert.deepEqual(hb.properties.schema_version.enum, ['0']);
    const labels = deref(doc, hb.properties.labels);
    assert.equal(labels.maxProperties, 64);
    assert.equal(labels.propertyNames.maxLength, 64);
    assert.equal(labels.additionalProperties.type, 'string');
    assert.equal(labels.additionalProperties.maxLength, 256);
});

test('history paging parameters match the contract', () => {
    const doc = bundle();
    const op = doc.paths['/api/v0/agents/{agent_id}/heartbeats'].get;
    const params = Object.fromEntries(op.parameters.map((p) => deref(doc, p))
        .map((p) => [p.name, p]));
    assert.deepEqual(Object.keys(params).sort(), ['cursor', 'from', 'limit', 'to']);
    assert.equal(params.from.schema.format, 'date-time');
    assert.equal(params.to.schema.format, 'date-time');
    assert.equal(params.limit.schema.minimum, 1);
    assert.equal(params.limit.schema.maximum, 1000);
    assert.equal(params.limit.schema.default, 100);
    assert.deepEqual(doc.components.schemas.HeartbeatPage.properties.next.type,
        ['string', 'null']);
});
