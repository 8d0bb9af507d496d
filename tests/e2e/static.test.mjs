// static.test.mjs - the dashboard's files on the HTTP address: index.html for / and client-side
// routes, content types, caching, no token needed, JSON 404s kept for the API, a page that says
// how to build a missing dashboard, and paths that try to leave the web root.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Aeid, assertError, failOnSanitizerReport, itShutsDownCleanly, rawRequest, tempDir } from './lib/harness.mjs';

const INDEX = '<!doctype html><title>AEI test dashboard</title><div id="root"></div>';
const ASSET = 'console.log("asset 3f2a");';

/* A web root with an index, a hashed asset, a stylesheet, a file outside it and a symbolic link
 * that leads out. */
function makeWebRoot() {
    const dir = tempDir('aei-e2e-web-');
    const root = path.join(dir, 'dist');
    fs.mkdirSync(path.join(root, 'assets'), { recursive: true });
    fs.writeFileSync(path.join(root, 'index.html'), INDEX);
    fs.writeFileSync(path.join(root, 'assets', 'index-3f2a.js'), ASSET);
    fs.writeFileSync(path.join(root, 'assets', 'index-77aa.css'), 'body{color:red}');
    fs.writeFileSync(path.join(root, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    fs.writeFileSync(path.join(dir, 'secret.txt'), 'TOP SECRET outside the web root');
    fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(root, 'assets', 'leak.js'));
    return root;
}

async function get(srv, p) {
    const r = await fetch(srv.baseUrl + p);
    return { status: r.status, headers: r.headers, text: await r.text() };
}

async function raw(srv, target) {
    return rawRequest(srv.port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
}

describe('dashboard files (sqlite)', () => {
    const srv = new Aeid({ store: 'sqlite', args: ['--web-root', makeWebRoot()] });
    before(async () => {
        await srv.start();
    });
    after(async () => {
        await srv.close();
    });
    failOnSanitizerReport(() => srv);

    it('/ and client-side routes answer index.html without a token, not cached', async () => {
        for (const p of ['/', '/traces/run-42', '/agents/a-1/executions', '/nope', '/healthz/x']) {
            const r = await get(srv, p);
            assert.equal(r.status, 200, `GET ${p}: ${r.status} ${r.text}`);
            assert.equal(r.text, INDEX, `GET ${p}`);
            assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
            assert.equal(r.headers.get('cache-control'), 'no-cache');
        }
    });

    it('hashed assets with their content type and a long cache', async () => {
        const js = await get(srv, '/assets/index-3f2a.js');
        assert.equal(js.status, 200);
        assert.equal(js.text, ASSET);
        assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
        assert.match(js.headers.get('cache-control'), /max-age=31536000.*immutable/);
        assert.equal(js.headers.get('x-content-type-options'), 'nosniff');
        const css = await get(srv, '/assets/index-77aa.css');
        assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
        const svg = await get(srv, '/favicon.svg');
        assert.equal(svg.headers.get('content-type'), 'image/svg+xml');
        assert.equal(svg.headers.get('cache-control'), 'no-cache');
        const head = await fetch(srv.baseUrl + '/assets/index-3f2a.js', { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get('content-length'), String(ASSET.length));
    });

    it('a missing asset -> 404 JSON, not index.html', async () => {
        const r = await get(srv, '/assets/nope-1234.js');
        assert.equal(r.status, 404);
        assert.equal(JSON.parse(r.text).error.code, 'not_found');
    });

    it('unknown /api/ routes keep their 404 JSON; the API still needs a token', async () => {
        for (const p of ['/api/v0/nope', '/api/nope.js', '/api/v0']) {
            assertError(await srv.api(p), 404, 'not_found');
        }
        assertError(await srv.api('/api/v0/agents', { token: null }), 401, 'unauthorized');
    });

    it('paths that leave the web root are refused', async () => {
        const targets = ['/../secret.txt', '/assets/../../secret.txt', '/%2e%2e/secret.txt',
            '/assets/%2e%2e/%2e%2e/secret.txt', '/..%2fsecret.txt', '/assets/leak.js',
            '//etc/passwd', '/assets/..\\..\\secret.txt', '/./../secret.txt', '/....//secret.txt'];
        for (const t of targets) {
            const r = await raw(srv, t);
            assert.ok(!r.text.includes('TOP SECRET') && !r.text.includes('root:x:'),
                `GET ${t} leaked a file outside the web root:\n${r.text}`);
            assert.ok(r.status === null || (r.status >= 200 && r.status < 500), `GET ${t}: ${r.status}`);
            // What may come back: a 4xx, or index.html when the server normalised the path.
            if (r.status === 200) assert.ok(r.text.endsWith(INDEX), `GET ${t}: ${r.text}`);
        }
        assert.equal((await get(srv, '/')).status, 200);
    });

    itShutsDownCleanly(() => srv);
});

describe('dashboard not built (sqlite)', () => {
    const srv = new Aeid({ store: 'sqlite', args: ['--web-root', path.join(tempDir('aei-e2e-web-'), 'dist')] });
    before(async () => {
        await srv.start();
    });
    after(async () => {
        await srv.close();
    });
    failOnSanitizerReport(() => srv);

    it('/ says how to build the dashboard; the API works', async () => {
        for (const p of ['/', '/traces/x']) {
            const r = await get(srv, p);
            assert.equal(r.status, 404);
            assert.match(r.headers.get('content-type'), /^text\/html/);
            assert.match(r.text, /not built/);
            assert.match(r.text, /npm run build/);
            assert.match(r.text, /--web-root/);
        }
        assert.equal((await srv.api('/api/v0/agents')).status, 200);
    });

    it('an empty --web-root is refused at start', async () => {
        const bad = new Aeid({ store: 'sqlite', args: ['--web-root', ''] });
        await assert.rejects(bad.start(), /--web-root/);
        await bad.close();
    });

    itShutsDownCleanly(() => srv);
});
