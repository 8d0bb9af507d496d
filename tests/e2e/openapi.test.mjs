// openapi.test.mjs - lint docs/api/openapi.yaml and check it against the issue-2 contract,
// the decision-trace routes, and the commands and RBAC routes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundle, config, deref, runRedocly, spec } from './lib/openapi.mjs';

const ACTIONS = ['execute', 'pause', 'resume', 'terminate', 'assign', 'override', 'reassign'];

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
        ['get', '/api/v0/me'],
        ['get', '/api/v0/agents/{agent_id}/commands'],
        ['post', '/api/v0/agents/{agent_id}/commands/{command_id}/ack'],
        ...ACTIONS.map((a) => ['post', `/api/v0/agents/{agent_id}/${a}`]),
    ];
    const described = Object.entries(doc.paths).flatMap(([path, item]) =>
        Object.keys(item).filter((k) => k !== 'parameters').map((m) => `${m} ${path}`));
    assert.deepEqual(described.sort(), routes.map(([m, p]) => `${m} ${p}`).sort());

    for (const [method, path] of routes) {
        const op = doc.paths[path][method];
        const codes = Object.keys(op.responses);
        const ok = path.endsWith('/ack') || !path.startsWith('/api/v0/agents/{agent_id}/') ||
            method === 'get' ? '200' : '202';
        assert.ok(codes.includes(ok), `${method} ${path}: no ${ok}`);
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
        'conflict', 'empty_body', 'forbidden', 'internal', 'invalid_field', 'invalid_parameter',
        'invalid_token', 'length_required', 'malformed_json', 'method_not_allowed', 'not_found',
        'payload_too_large', 'store_unavailable', 'too_deep', 'unauthorized', 'unsupported_media_type',
    ]);
    for (const k of ['field', 'line', 'column']) {
        assert.ok(error.properties[k], `Error lacks optional ${k}`);
    }

    const r = doc.components.responses;
    assert.ok(r.Unauthorized.headers['WWW-Authenticate']);
    assert.ok(r.MethodNotAllowed.headers.Allow);
    assert.ok(r.StoreUnavailable.headers['Retry-After']);
    assert.ok(r.ActionUnavailable.headers['Retry-After']);
    assert.ok(r.Forbidden.headers['WWW-Authenticate']);
});

test('every route a role or an agent token can be refused answers 403 Forbidden', () => {
    const doc = bundle();
    // Routes every valid token may call: no 403 (another agent's commands are a 404).
    const open = new Set(['get /healthz', 'get /api/v0/me', 'get /api/v0/agents/{agent_id}/commands']);
    for (const [path, item] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(item)) {
            if (method === 'parameters') continue;
            const key = `${method} ${path}`;
            const has = op.responses['403'] !== undefined;
            assert.equal(has, !open.has(key), `${key}: ${has ? 'documents' : 'lacks'} 403`);
            if (has) {
                assert.equal(op.responses['403'].$ref, '#/components/responses/Forbidden', key);
            }
        }
    }
});

test('the action routes document every answer, each with its own body schema', () => {
    const doc = bundle();
    const bodies = {
        execute: 'ExecuteRequest', pause: 'ControlRequest', resume: 'ControlRequest',
        terminate: 'ControlRequest', assign: 'AssignRequest', override: 'OverrideRequest',
        reassign: 'ReassignRequest',
    };
    for (const action of ACTIONS) {
        const op = doc.paths[`/api/v0/agents/{agent_id}/${action}`].post;
        for (const code of ['202', '400', '401', '403', '404', '405', '409', '411', '413', '415',
            '500', '503']) {
            assert.ok(op.responses[code], `POST ${action}: no ${code}`);
        }
        const schema = op.requestBody.content['application/json'].schema;
        assert.equal(schema.$ref, `#/components/schemas/${bodies[action]}`, action);
        const s = deref(doc, schema);
        assert.equal(s.additionalProperties, false, `${action}: unknown members are refused`);
        assert.ok(s.properties.reason, `${action} takes a reason`);
        assert.equal(op.requestBody.required, bodies[action] !== 'ControlRequest', action);
    }
    const ack = doc.paths['/api/v0/agents/{agent_id}/commands/{command_id}/ack'].post;
    for (const code of ['200', '400', '401', '403', '404', '409', '413', '415', '503']) {
        assert.ok(ack.responses[code], `POST ack: no ${code}`);
    }
    const s = doc.components.schemas;
    assert.deepEqual(s.CommandAck.properties.status.enum, ['succeeded', 'failed', 'rejected']);
    assert.deepEqual(s.CommandStatus.enum, ['pending', 'delivered', 'succeeded', 'failed', 'rejected']);
    assert.deepEqual(s.CommandAction.enum, ACTIONS);
    assert.equal(s.ExecuteRequest.properties.prompt.$ref, '#/components/schemas/CommandText');
    assert.equal(s.CommandText.maxLength, 16384);
    assert.equal(s.Reason.maxLength, 1000);
});

test('agents carry team_id and control; heartbeat answers carry commands', () => {
    const doc = bundle();
    const s = doc.components.schemas;
    for (const k of ['team_id', 'control']) {
        assert.ok(s.Agent.required.includes(k), `Agent requires ${k}`);
    }
    assert.deepEqual(deref(doc, s.Agent.properties.control).enum, ['active', 'paused', 'terminated']);
    assert.ok(s.Execution.properties.team_id, 'Execution has team_id');
    assert.equal(s.HeartbeatAck.properties.commands.items.$ref,
        '#/components/schemas/CommandDelivery');
    assert.deepEqual([...s.CommandDelivery.required].sort(),
        ['action', 'command_id', 'created', 'params']);
    assert.deepEqual([...s.Principal.properties.role.enum].sort(),
        ['admin', 'agent', 'operator', 'viewer']);
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
        cpu_pct: [0, 100], mem_pct: [0, 100], tokens_per_min: [0, 1e15],
        cost_usd: [0, 1e15], confidence: [0, 100],
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
