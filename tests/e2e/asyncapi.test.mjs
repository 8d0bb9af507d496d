// asyncapi.test.mjs - validate docs/api/asyncapi.yaml with the official AsyncAPI parser
// (@asyncapi/parser) and check it against the issue-3 WebSocket contract and the commands
// topic and team scope of issue 5.
//
// AEI_ASYNCAPI_SPEC=<file> checks another file instead (a broken copy, to see the test fail).
// Needs no server and no network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const spec = resolve(process.env.AEI_ASYNCAPI_SPEC || join(root, 'docs', 'api', 'asyncapi.yaml'));
const openapi = join(root, 'docs', 'api', 'openapi.yaml');

// What the contract (issue 3) names.
const SERVER_TYPES = ['subscribed', 'snapshot', 'delta', 'event', 'totals', 'decision', 'execution',
    'reload', 'unsubscribed', 'pong', 'error', 'command'];
const CLIENT_OPS = ['subscribe', 'unsubscribe', 'ping'];
const TEXT_FORMS = {
    subscribe: ['subscribe:agents:all', 'subscribe:agent:researcher-1', 'subscribe:execution:run-42',
        'subscribe:commands:researcher-1'],
    unsubscribe: ['unsubscribe:agents:all', 'unsubscribe:agent:researcher-1',
        'unsubscribe:commands:researcher-1'],
    ping: ['ping'],
};
const REPLIES = { subscribe: 'subscribed', unsubscribe: 'unsubscribed', ping: 'pong' };
const ERROR_CODES = ['invalid_json', 'invalid_message', 'unknown_op', 'invalid_topic',
    'invalid_since', 'too_many_topics', 'not_subscribed', 'unsupported_frame', 'forbidden'];
const CLOSE_CODES = ['1001', '1009', '4008', '4029'];

// The parser, and the YAML reader and JSON Schema validator it depends on itself (loaded from
// its own location, so that they are exactly what it was installed with).
const require = createRequire(import.meta.url);
let lib;
async function libs() {
    if (lib) {
        return lib;
    }
    let parserPkg;
    try {
        parserPkg = require.resolve('@asyncapi/parser/package.json');
    } catch {
        assert.fail('@asyncapi/parser is missing; run "npm ci" in tests/e2e to install the dev '
            + 'dependencies');
    }
    const { Parser, DiagnosticSeverity } = await import('@asyncapi/parser');
    const fromParser = createRequire(parserPkg);
    const Ajv = fromParser('ajv');
    const addFormats = fromParser('ajv-formats');
    lib = {
        Parser, DiagnosticSeverity, yaml: fromParser('js-yaml'),
        Ajv: Ajv.default ?? Ajv, addFormats: addFormats.default ?? addFormats,
    };
    return lib;
}

let parsed;
async function parse() {
    if (parsed) {
        return parsed;
    }
    const { Parser } = await libs();
    assert.ok(existsSync(spec), `${spec} is missing`);
    const text = readFileSync(spec, 'utf8');
    const { document, diagnostics } = await new Parser().parse(text, { source: spec });
    parsed = { text, document, diagnostics };
    return parsed;
}

// The document as plain data, with local $refs resolved by deref().
let raw;
async function doc() {
    if (!raw) {
        const { yaml } = await libs();
        raw = yaml.load(readFileSync(spec, 'utf8'));
    }
    return raw;
}

function deref(d, obj) {
    let cur = obj;
    while (cur && typeof cur.$ref === 'string') {
        assert.ok(cur.$ref.startsWith('#/'), `external $ref ${cur.$ref}`);
        cur = cur.$ref.slice(2).split('/')
            .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
            .reduce((o, k) => o?.[k], d);
        assert.ok(cur, `dangling $ref ${obj.$ref}`);
    }
    return cur;
}

// The `const` of a payload's property, looking through allOf.
function constOf(d, schema, prop) {
    const s = deref(d, schema);
    const own = s?.properties?.[prop] && deref(d, s.properties[prop]);
    if (own?.const !== undefined) {
        return own.const;
    }
    for (const part of s?.allOf ?? []) {
        const c = constOf(d, part, prop);
        if (c !== undefined) {
            return c;
        }
    }
    return undefined;
}

// Every JSON property name a schema defines, through allOf.
function propsOf(d, schema) {
    const s = deref(d, schema);
    return [...new Set([...Object.keys(s.properties ?? {}),
        ...(s.allOf ?? []).flatMap((p) => propsOf(d, p))])];
}

// A JSON Schema validator over the document's components.
let ajv;
async function validator() {
    if (!ajv) {
        const { Ajv, addFormats } = await libs();
        ajv = new Ajv({ strict: false, allErrors: true });
        addFormats(ajv);
        ajv.addSchema({ components: (await doc()).components }, 'asyncapi');
    }
    return ajv;
}

async function check(schema) {
    const v = await validator();
    if (schema.$ref?.startsWith('#/')) {
        return v.getSchema(`asyncapi${schema.$ref}`);
    }
    return v.compile(schema);
}

// Operations by action, each with its messages resolved to { key, message }.
async function operations() {
    const d = await doc();
    return Object.entries(d.operations ?? {}).map(([id, op]) => ({
        id, op,
        messages: (op.messages ?? []).map((m) => ({ ref: m.$ref, message: deref(d, m) })),
        replies: (op.reply?.messages ?? []).map((m) => deref(d, m)),
    }));
}

test('the AsyncAPI parser reports no errors', async (t) => {
    const { DiagnosticSeverity } = await libs();
    const { document, diagnostics } = await parse();
    const name = (s) => DiagnosticSeverity[s] ?? String(s);
    const line = (x) => `${name(x.severity)} ${x.code} at ${x.path.join('.') || '(root)'}`
        + `${x.range ? ` (line ${x.range.start.line + 1})` : ''}: ${x.message}`;
    for (const x of diagnostics.filter((x) => x.severity !== DiagnosticSeverity.Error)) {
        t.diagnostic(line(x));
    }
    const errors = diagnostics.filter((x) => x.severity === DiagnosticSeverity.Error);
    assert.equal(errors.length, 0, `${errors.length} parser error(s):\n${errors.map(line).join('\n')}`);
    assert.ok(document, 'the parser returned no document');
    assert.match(document.version(), /^3\.0\./);
    assert.equal(document.info().version(), '0.1.0');
});

test('every contract message type and op is described', async () => {
    const d = await doc();
    const ops = await operations();
    const sent = ops.filter((o) => o.op.action === 'send');
    const received = ops.filter((o) => o.op.action === 'receive');

    // Server -> client: one message per type, in a send operation, and nowhere received.
    for (const type of SERVER_TYPES) {
        const where = sent.filter((o) => o.messages.some(
            ({ message }) => constOf(d, message.payload, 'type') === type));
        assert.ok(where.length > 0, `no send operation carries a "${type}" message`);
        assert.ok(!received.some((o) => o.messages.some(
            ({ message }) => constOf(d, message.payload, 'type') === type)),
        `"${type}" is in a receive operation`);
    }
    const allTypes = Object.values(d.components.messages)
        .map((m) => constOf(d, m.payload, 'type')).filter((x) => x !== undefined);
    assert.deepEqual([...new Set(allTypes)].sort(), [...SERVER_TYPES].sort(),
        'message types beyond the contract');

    // Several messages in one frame: a send operation with an array of every server message.
    const batch = sent.flatMap((o) => o.messages).map(({ message }) => deref(d, message.payload))
        .find((s) => s.type === 'array');
    assert.ok(batch, 'no send operation carries a JSON array of messages');
    const items = deref(d, batch.items);
    const inBatch = (items.oneOf ?? items.anyOf ?? []).map((s) => constOf(d, s, 'type'));
    assert.deepEqual([...new Set(inBatch)].sort(), [...SERVER_TYPES].sort(),
        'the array does not admit every type');
    assert.equal(inBatch.length, Object.keys(d.components.messages)
        .filter((k) => constOf(d, d.components.messages[k].payload, 'type')).length,
    'the array admits every server message, the two snapshots included');

    // Client -> server: the JSON form and the plain-text form of each op, in one receive
    // operation, with the contract's reply.
    for (const op of CLIENT_OPS) {
        const o = received.find((x) => x.messages.some(
            ({ message }) => constOf(d, message.payload, 'op') === op));
        assert.ok(o, `no receive operation carries {"op":"${op}"}`);
        assert.ok(!sent.some((x) => x.messages.some(
            ({ message }) => constOf(d, message.payload, 'op') === op)), `"${op}" is sent`);
        const texts = o.messages.filter(({ message }) => message.contentType === 'text/plain');
        assert.ok(texts.length > 0, `operation ${o.id} has no plain-text form`);
        for (const form of TEXT_FORMS[op]) {
            const ok = [];
            for (const { message } of texts) {
                if ((await check(message.payload))(form)) {
                    ok.push(message.name);
                }
            }
            assert.equal(ok.length, 1, `text "${form}" matches ${ok.length} messages of ${o.id}`);
        }
        assert.ok(o.replies.some((m) => constOf(d, m.payload, 'type') === REPLIES[op]),
            `operation ${o.id} does not reply with "${REPLIES[op]}"`);
    }

    // Every operation and message is on the channel it names.
    const channels = Object.keys(d.channels);
    assert.equal(channels.length, 1, 'the WebSocket connection is one channel');
    const channelMessages = Object.keys(d.channels[channels[0]].messages).map(
        (k) => `#/channels/${channels[0]}/messages/${k}`);
    for (const o of ops) {
        assert.equal(o.op.channel.$ref, `#/channels/${channels[0]}`, o.id);
        for (const { ref } of o.messages) {
            assert.ok(channelMessages.includes(ref), `${o.id}: ${ref} is not a channel message`);
        }
    }
});

test('servers, handshake security and close codes match the contract', async () => {
    const d = await doc();
    const servers = Object.values(d.servers).map((s) => `${s.protocol}://${s.host}${s.pathname}`);
    assert.deepEqual(servers.sort(), ['ws://127.0.0.1:3000/ws', 'ws://127.0.0.1:8080/']);
    for (const [name, s] of Object.entries(d.servers)) {
        const schemes = s.security.map((x) => deref(d, x));
        assert.ok(schemes.some((x) => x.type === 'http' && x.scheme === 'bearer'),
            `server ${name}: no bearer scheme`);
        assert.ok(schemes.some((x) => x.type === 'httpApiKey' && x.in === 'query'
            && x.name === 'token'), `server ${name}: no token query parameter`);
    }
    const ws = Object.values(d.channels)[0].bindings?.ws;
    assert.equal(ws?.method, 'GET');
    assert.ok(ws.query.properties.token, 'ws binding: no token query parameter');
    assert.ok(ws.headers.properties.Authorization, 'ws binding: no Authorization header');

    const text = readFileSync(spec, 'utf8');
    for (const code of CLOSE_CODES) {
        assert.match(d.info.description, new RegExp(`\\| ${code} \\|`), `close code ${code}`);
    }
    for (const s of ['401', '403', 'origin_not_allowed', 'invalid_token', 'WWW-Authenticate',
        'JSON array', 'since', 'epoch', 'recovered', '--ws-client-buffer',
        '--slow-consumer-timeout']) {
        assert.ok(text.includes(s), `the document never mentions ${s}`);
    }
});

test('schemas match the contract and the REST agent document', async () => {
    const d = await doc();
    const { yaml } = await libs();
    const s = d.components.schemas;
    const rest = yaml.load(readFileSync(openapi, 'utf8')).components.schemas;

    // Full agent state: the REST agent plus liveness and estimated_cost_usd, all required.
    const state = s.AgentState;
    const want = [...new Set([...Object.keys(rest.Agent.properties), 'liveness',
        'estimated_cost_usd'])].sort();
    assert.deepEqual(Object.keys(state.properties).sort(), want);
    assert.deepEqual([...state.required].sort(), want);
    assert.deepEqual(Object.keys(s.AgentChange.properties).sort(), want,
        'changed may hold any member of the state');
    assert.deepEqual(deref(d, state.properties.status).enum, rest.Status.enum);
    assert.deepEqual(deref(d, state.properties.liveness).enum, ['online', 'stale', 'dead']);
    assert.deepEqual(propsOf(d, state.properties.metrics).sort(),
        Object.keys(rest.Metrics.properties).sort());
    assert.deepEqual(deref(d, state.properties.agent_id).pattern, rest.AgentId.pattern);

    // Totals.
    assert.deepEqual([...s.Totals.required].sort(), ['agents', 'agents_by_liveness',
        'agents_by_status', 'cost_usd', 'estimated_cost_usd', 'tokens_per_min']);
    assert.deepEqual([...deref(d, s.Totals.properties.agents_by_status).required].sort(),
        [...rest.Status.enum].sort());
    assert.deepEqual([...deref(d, s.Totals.properties.agents_by_liveness).required].sort(),
        ['dead', 'online', 'stale']);
    assert.deepEqual(propsOf(d, s.TotalsMessage).sort(),
        [...s.Totals.required, 'epoch', 'seq', 'type'].sort());

    // Errors and events.
    assert.deepEqual([...deref(d, s.ErrorMessage.properties.code).enum].sort(),
        [...ERROR_CODES].sort());
    assert.deepEqual([...s.Event.properties.event.enum].sort(),
        ['agent.dead', 'agent.online', 'agent.stale']);
});

test('every example matches its payload schema, and the schemas reject bad messages', async () => {
    const d = await doc();
    let n = 0;
    for (const [name, m] of Object.entries(d.components.messages)) {
        assert.ok(m.examples?.length > 0, `message ${name} has no example`);
        const valid = await check(m.payload);
        for (const ex of m.examples) {
            assert.ok(valid(ex.payload), `message ${name}, example ${ex.name}: `
                + `${JSON.stringify(valid.errors, null, 1)}`);
            n++;
        }
    }
    assert.ok(n >= SERVER_TYPES.length + CLIENT_OPS.length * 2);

    const ok = async (ref, value) => (await check({ $ref: `#/components/schemas/${ref}` }))(value);
    const epoch = '9f3c2a1b7d4e6f80';
    assert.ok(await ok('SubscribeRequest', { op: 'subscribe', topic: 'agent:a.b_c:d-1' }));
    for (const bad of [
        { op: 'subscribe' },
        { op: 'subscribe', topic: 'agents:some' },
        { op: 'subscribe', topic: 'agent:' },
        { op: 'subscribe', topic: 'agent:has space' },
        { op: 'subscribe', topic: `agent:${'x'.repeat(129)}` },
        { op: 'subscribe', topic: 'agents:all', since: { epoch: 'xyz', seq: 1 } },
        { op: 'subscribe', topic: 'agents:all', since: { epoch, seq: -1 } },
        { op: 'subscribe', topic: 'agents:all', since: { epoch } },
    ]) {
        assert.ok(!(await ok('SubscribeRequest', bad)), JSON.stringify(bad));
    }
    assert.ok(!(await ok('SubscribeText', 'subscribe:agents:some')));
    assert.ok(!(await ok('Delta', { type: 'delta', epoch, seq: 1, agent_id: 'a', changed: {},
        server_ts: '2026-11-24T15:00:00.000000Z' })), 'a delta with nothing changed');
    assert.ok(!(await ok('Snapshot', { type: 'snapshot', topic: 'agents:all', epoch, seq: 0,
        agents: [] })), 'a snapshot without totals');
    assert.ok(!(await ok('Batch', [])), 'an empty array');
    assert.ok(await ok('SubscribeRequest', { op: 'subscribe', topic: 'commands:researcher-1' }));
    assert.ok(!(await ok('SubscribeRequest', { op: 'subscribe', topic: 'commands:' })));
    assert.ok(!(await ok('CommandMessage', { type: 'command', topic: 'commands:a', epoch, seq: 3,
        command: { command_id: 'c', action: 'launch', params: {}, created: '2026-11-24T15:00:00.000000Z' } })),
    'an action that does not exist');
    assert.ok(!(await ok('CommandsSnapshot', { type: 'snapshot', topic: 'commands:a', epoch, seq: 3 })),
        'a commands snapshot without commands');
    assert.ok(await ok('Batch', [{ type: 'snapshot', topic: 'commands:a', epoch, seq: 3, commands: [] }]),
        'a commands snapshot in an array');
    assert.ok(!(await ok('Batch', [{ type: 'pong' }])), 'an array with a broken message');
});
