// rbac.test.mjs - the RBAC matrix on both stores: every role (the bootstrap token, and an
// admin, operator, viewer and agent of each of two teams, all made with `aei token create`)
// against its own team's and the other team's resources, over every REST route of aeid's route
// table (read from src/server/http.c, so that a new route fails here until the matrix covers
// it) and every WebSocket topic. Asserts the exact status of each cell, that a 404 for another
// team's resource is the 404 of one that does not exist, and that listings never show another
// team's rows.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, it } from 'node:test';
import { REPO, describeEachStore, makeHeartbeat, sleep, tempDir, uniqueId } from './lib/harness.mjs';
import { auditKey, makeTeam } from './lib/teams.mjs';
import { WsClient, closeAll } from './lib/ws.mjs';

/* The routes aeid answers, as (template, method) pairs, from its route table: route_names and
 * route_methods in src/server/http.c; the action route once per action of command.c. */
function routesOfServer() {
    const http = readFileSync(path.join(REPO, 'src/server/http.c'), 'utf8');
    const strings = (name) => {
        const m = http.match(new RegExp(`${name}\\[\\] = \\{([\\s\\S]*?)\\};`));
        assert.ok(m, `src/server/http.c: no ${name}[] table`);
        return [...m[1].matchAll(/"([^"]*)"/g)].map((x) => x[1]);
    };
    const names = strings('route_names');
    const methods = strings('route_methods');
    assert.equal(names.length, methods.length, 'route_names and route_methods differ in length');
    const cmd = readFileSync(path.join(REPO, 'src/server/command.c'), 'utf8');
    const am = cmd.match(/command_action_names\[CMD_ACTION_COUNT\] = \{([\s\S]*?)\};/);
    assert.ok(am, 'src/server/command.c: no command_action_names table');
    const actions = [...am[1].matchAll(/"([^"]*)"/g)].map((x) => x[1]);
    const out = [];
    names.forEach((name, i) => {
        if (name === 'other') return;
        for (const method of methods[i].split(',').map((s) => s.trim()).filter(Boolean)) {
            if (name.endsWith('/{action}')) {
                for (const a of actions) out.push(`${method} ${name.replace('{action}', a)}`);
            } else {
                out.push(`${method} ${name}`);
            }
        }
    });
    return out;
}

/* The expected status by role, the same for both teams or {own, other}. */
function byRole(table) {
    return (role, rel) => {
        const v = table[role];
        return typeof v === 'number' ? v : v[rel];
    };
}
const ADMIN_ONLY = byRole({ admin: 200, operator: 403, viewer: 403, agent: 403 });
const EVERYONE = byRole({ admin: 200, operator: 200, viewer: 200, agent: 200 });
const USERS_READ = byRole({ admin: 200, operator: 200, viewer: 200, agent: 403 });
const TEAM_READ = byRole({
    admin: 200,
    operator: { own: 200, other: 404 },
    viewer: { own: 200, other: 404 },
    agent: 403,
});
const TELEMETRY = byRole({
    admin: 200,
    operator: { own: 200, other: 404 },
    viewer: 403,
    agent: { own: 200, other: 403 },
});
const ACTS = byRole({ admin: 202, operator: { own: 202, other: 404 }, viewer: 403, agent: 403 });

function decision(agentId, executionId) {
    return {
        decision_id: randomUUID(),
        execution_id: executionId,
        agent_id: agentId,
        timestamp: new Date().toISOString(),
        reasoning_context: 'rbac matrix',
        confidence_score: 70,
        selected_outcome: 'go on',
    };
}

/* The order in which the actions run for a caller allowed to act, each answered 202: the
 * agent ends active, as it began. */
const ACTION_ORDER = ['execute', 'assign', 'override', 'reassign', 'pause', 'resume',
    'terminate', 'resume'];

function actionBody(action, t) {
    switch (action) {
    case 'execute':
        return { prompt: 'summarise the logs', reason: 'rbac matrix' };
    case 'assign':
        return { task: 'triage', execution_id: t.execution };
    case 'override':
        return { outcome: 'stop here', execution_id: t.execution };
    case 'reassign':
        return { to_agent_id: t.sibling, execution_id: t.execution };
    default:
        return undefined;
    }
}

describeEachStore('rbac matrix', (srv) => {
    const key = auditKey();
    const teams = {}; // A, B: {name, agent, tokens, sibling, execution, command}
    let principals; // {label, role, token, own, other}
    const webRoot = path.join(tempDir('aei-e2e-web-'), 'dist');
    mkdirSync(webRoot, { recursive: true });
    writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>AEI</title>');
    srv.args.push('--audit-key', key, '--web-root', webRoot);

    /* Another team's resource of the same shape that does not exist anywhere. */
    const ghost = {
        name: 'nobody',
        agent: uniqueId('ghost-bot'),
        sibling: uniqueId('ghost-bot'),
        execution: uniqueId('ghost-exec'),
        command: randomUUID(),
    };

    /* A fresh execution of team t's agent, one decision long, made with its own token. */
    async function freshExecution(t) {
        const id = uniqueId('exec');
        const r = await srv.api('/api/v0/traces', { body: [decision(t.agent, id)], token: t.tokens.agent });
        assert.equal(r.status, 200, r.text);
        return id;
    }

    before(async () => {
        for (const label of ['A', 'B']) {
            const t = await makeTeam(srv, key, `team${label}`);
            t.sibling = uniqueId(`team${label}-sib`);
            const hb = await srv.api('/api/v0/heartbeats', {
                body: makeHeartbeat(t.sibling), token: t.tokens.operator,
            });
            assert.equal(hb.status, 200, hb.text);
            t.execution = await freshExecution(t);
            const c = await srv.api(`/api/v0/agents/${t.agent}/execute`, {
                body: { prompt: 'to be acknowledged' }, token: t.tokens.operator,
            });
            assert.equal(c.status, 202, c.text);
            t.command = c.json.command.command_id;
            teams[label] = t;
        }
        principals = [{ label: 'bootstrap', role: 'admin', token: srv.token, own: teams.A, other: teams.B, team: 'default' }];
        for (const [mine, theirs] of [['A', 'B'], ['B', 'A']]) {
            for (const role of ['admin', 'operator', 'viewer', 'agent']) {
                principals.push({
                    label: `${role} of team ${mine}`, role, token: teams[mine].tokens[role],
                    own: teams[mine], other: teams[theirs], team: teams[mine].name,
                });
            }
        }
    });

    /* Each route: how to call it as p on target team t, the expected status by role and
     * relation, and what a 200 must (not) show. A route whose call does not depend on the
     * target is `teamless` and is called once per principal. */
    const ROUTES = {
        'GET /healthz': { teamless: true, expect: EVERYONE, call: (p) => srv.api('/healthz', { token: p.token }) },
        'GET dashboard': { teamless: true, expect: EVERYONE, call: (p) => srv.api('/', { token: p.token }) },
        'GET /metrics': { teamless: true, expect: ADMIN_ONLY, call: (p) => srv.api('/metrics', { token: p.token }) },
        'GET /api/v0/debug/health': {
            teamless: true,
            expect: ADMIN_ONLY,
            call: (p) => srv.api('/api/v0/debug/health', { token: p.token }),
        },
        'GET /api/v0/me': {
            teamless: true,
            expect: EVERYONE,
            call: (p) => srv.api('/api/v0/me', { token: p.token }),
            check(r, p) {
                assert.equal(r.json.team, p.team);
                assert.equal(r.json.role, p.role);
                assert.equal(r.json.kind, p.label === 'bootstrap' ? 'admin' : p.role === 'agent' ? 'agent' : 'user');
                if (p.role === 'agent') assert.equal(r.json.id, p.own.agent);
            },
        },
        'POST /api/v0/heartbeats': {
            expect: TELEMETRY,
            call: (p, t) => srv.api('/api/v0/heartbeats', { body: makeHeartbeat(t.agent), token: p.token }),
            ghost: (p, g) => srv.api(`/api/v0/agents/${g.agent}`, { token: teams.A.tokens.viewer }),
        },
        'POST /api/v0/traces': {
            expect: TELEMETRY,
            call: (p, t) => srv.api('/api/v0/traces', { body: [decision(t.agent, uniqueId('exec'))], token: p.token }),
            ghost: (p, g) => srv.api(`/api/v0/agents/${g.agent}`, { token: teams.A.tokens.viewer }),
        },
        'GET /api/v0/agents': {
            teamless: true,
            expect: USERS_READ,
            call: (p) => srv.api('/api/v0/agents?limit=1000', { token: p.token }),
            check(r, p) {
                const ids = r.json.agents.map((a) => a.agent_id);
                assert.ok(ids.includes(p.own.agent) && ids.includes(p.own.sibling), ids.join());
                if (p.role === 'admin') {
                    assert.ok(ids.includes(p.other.agent), 'an admin sees every team');
                } else {
                    for (const a of r.json.agents) assert.equal(a.team_id, p.own.name, `${a.agent_id} shown`);
                }
            },
        },
        'GET /api/v0/agents/{agent_id}': {
            expect: TEAM_READ,
            call: (p, t) => srv.api(`/api/v0/agents/${t.agent}`, { token: p.token }),
            check: (r, p, t) => assert.equal(r.json.team_id, t.name),
        },
        'GET /api/v0/agents/{agent_id}/heartbeats': {
            expect: TEAM_READ,
            call: (p, t) => srv.api(`/api/v0/agents/${t.agent}/heartbeats`, { token: p.token }),
        },
        'GET /api/v0/agents/{agent_id}/rollups': {
            expect: TEAM_READ,
            call: (p, t) => srv.api(`/api/v0/agents/${t.agent}/rollups`, { token: p.token }),
        },
        'GET /api/v0/agents/{agent_id}/commands': {
            expect: byRole({
                admin: 200,
                operator: { own: 200, other: 404 },
                viewer: { own: 200, other: 404 },
                agent: { own: 200, other: 404 },
            }),
            call: (p, t) => srv.api(`/api/v0/agents/${t.agent}/commands?limit=1000`, { token: p.token }),
            check(r, p, t) {
                assert.ok(r.json.commands.some((c) => c.command_id === t.command));
                for (const c of r.json.commands) {
                    assert.equal(c.agent_id, t.agent);
                    assert.equal(c.team_id, t.name);
                }
            },
        },
        'POST /api/v0/agents/{agent_id}/commands/{command_id}/ack': {
            expect: byRole({ admin: 200, operator: 403, viewer: 403, agent: { own: 200, other: 404 } }),
            call: (p, t) => srv.api(`/api/v0/agents/${t.agent}/commands/${t.command}/ack`, {
                body: { status: 'succeeded', result: { by: p.label } }, token: p.token,
            }),
            check: (r, p, t) => assert.equal(r.json.command.status, 'succeeded'),
        },
        'GET /api/v0/executions': {
            teamless: true,
            expect: USERS_READ,
            call: (p) => srv.api('/api/v0/executions?limit=1000', { token: p.token }),
            check(r, p) {
                const ids = r.json.executions.map((e) => e.execution_id);
                assert.ok(ids.includes(p.own.execution), ids.join());
                if (p.role === 'admin') assert.ok(ids.includes(p.other.execution), 'an admin sees every team');
                else for (const e of r.json.executions) assert.equal(e.team_id, p.own.name, `${e.execution_id} shown`);
            },
        },
        'GET /api/v0/executions/{execution_id}': {
            expect: TEAM_READ,
            call: (p, t) => srv.api(`/api/v0/executions/${t.execution}`, { token: p.token }),
        },
        'PATCH /api/v0/executions/{execution_id}': {
            expect: byRole({
                admin: 200,
                operator: { own: 200, other: 404 },
                viewer: 403,
                agent: { own: 200, other: 404 },
            }),
            async call(p, t) {
                const ex = t === ghost ? uniqueId('exec') : await freshExecution(t);
                return srv.api(`/api/v0/executions/${ex}`, {
                    method: 'PATCH', body: { status: 'completed' }, token: p.token,
                });
            },
            normalize: (text) => text.replace(/exec-[0-9a-f]{8}/g, '<execution>'),
        },
        'GET /api/v0/executions/{execution_id}/decisions': {
            expect: TEAM_READ,
            call: (p, t) => srv.api(`/api/v0/executions/${t.execution}/decisions`, { token: p.token }),
            check: (r) => assert.equal(r.json.decisions.length, 1),
        },
        'GET /api/v0/executions/{execution_id}/export': {
            expect: TEAM_READ,
            call: (p, t) => srv.api(`/api/v0/executions/${t.execution}/export`, { token: p.token }),
        },
        'GET /api/v0/audit': {
            teamless: true,
            expect: USERS_READ,
            call: (p) => srv.api('/api/v0/audit?limit=1000', { token: p.token }),
            check(r, p) {
                const teamsSeen = new Set(r.json.rows.map((row) => row.team_id));
                assert.ok(teamsSeen.has(p.own.name), [...teamsSeen].join());
                if (p.role === 'admin') assert.ok(teamsSeen.has(p.other.name), 'an admin sees every chain');
                else assert.deepEqual([...teamsSeen], [p.own.name]);
            },
        },
        'GET /api/v0/audit/verify': {
            teamless: true,
            expect: USERS_READ,
            call: (p) => srv.api('/api/v0/audit/verify', { token: p.token }),
            async check(r, p) {
                assert.equal(r.json.ok, true, r.text);
                if (p.role === 'admin') return;
                const page = await srv.api('/api/v0/audit?limit=1000', { token: p.token });
                assert.equal(page.json.next, null);
                assert.equal(r.json.rows_checked, page.json.rows.length,
                    'verify covers the caller\'s team\'s chain only');
            },
        },
    };
    for (const action of ['execute', 'pause', 'resume', 'terminate', 'assign', 'override', 'reassign']) {
        ROUTES[`POST /api/v0/agents/{agent_id}/${action}`] = { action, expect: ACTS };
    }

    it('the matrix covers every route in the route table of src/server/http.c, and no other', () => {
        const server = routesOfServer();
        assert.deepEqual([...Object.keys(ROUTES)].sort(), [...new Set(server)].sort());
    });

    /* The body of a 404 with the ids of the targets replaced, to compare with a ghost's. */
    function normalized(text, route, t) {
        let s = text;
        for (const id of [t.agent, t.sibling, t.execution, t.command]) s = s.split(id).join('<id>');
        return route.normalize ? route.normalize(s) : s;
    }

    async function assertCell(name, route, p, rel, r) {
        const t = rel === 'own' ? p.own : p.other;
        const want = route.expect(p.role, rel);
        const where = `${name} as ${p.label} on team ${rel === 'own' ? p.own.name : p.other.name} (${rel})`;
        assert.equal(r.status, want, `${where}: expected ${want}, got ${r.status} ${r.text.slice(0, 300)}`);
        if (want === 403) {
            assert.equal(r.json?.error?.code, 'forbidden', `${where}: ${r.text}`);
            assert.match(r.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/, where);
        }
        if (want === 404) {
            assert.equal(r.json?.error?.code, 'not_found', `${where}: ${r.text}`);
            const g = route.ghost ? await route.ghost(p, ghost) : await callRoute(route, p, ghost);
            assert.equal(g.status, 404, `${where}: the same request for a resource that does not exist: ${g.text}`);
            assert.equal(normalized(r.text, route, t), normalized(g.text, route, ghost),
                `${where}: the 404 must not tell another team's resource from one that does not exist`);
        }
        if (r.status < 300 && route.check) await route.check(r, p, t);
    }

    function callRoute(route, p, t) {
        if (route.action) {
            return srv.api(`/api/v0/agents/${t.agent}/${route.action}`, {
                method: 'POST', body: actionBody(route.action, t), token: p.token,
            });
        }
        return route.call(p, t);
    }

    it('every role x own team / other team x every REST route answers as the contract says', async (t) => {
        let cells = 0;
        for (const p of principals) {
            for (const [name, route] of Object.entries(ROUTES)) {
                if (route.action) continue;
                for (const rel of route.teamless ? ['own'] : ['own', 'other']) {
                    const r = await callRoute(route, p, rel === 'own' ? p.own : p.other);
                    await assertCell(name, route, p, rel, r);
                    cells++;
                }
            }
        }
        assert.ok(cells >= 9 * 20, `${cells} cells`);
        t.diagnostic(`${cells} cells over ${principals.length} principals`);
    });

    it('every role x own team / other team x every action: 202 in order, or 403/404 before anything else', async () => {
        for (const p of principals) {
            for (const rel of ['own', 'other']) {
                const t = rel === 'own' ? p.own : p.other;
                const allowed = ACTS(p.role, rel) === 202;
                const before = await srv.api(`/api/v0/agents/${t.agent}/commands?limit=1000`);
                for (const action of allowed ? ACTION_ORDER : Object.keys(ROUTES).filter((n) => ROUTES[n].action).map((n) => ROUTES[n].action)) {
                    const name = `POST /api/v0/agents/{agent_id}/${action}`;
                    const r = await callRoute(ROUTES[name], p, t);
                    await assertCell(name, ROUTES[name], p, rel, r);
                    if (r.status === 202) {
                        assert.equal(r.json.command.team_id, t.name);
                        assert.equal(r.json.command.actor.id, p.label === 'bootstrap' ? 'bootstrap' : `${p.role}-${p.own.name}`);
                    }
                }
                const after = await srv.api(`/api/v0/agents/${t.agent}/commands?limit=1000`);
                assert.equal(after.json.commands.length - before.json.commands.length, allowed ? ACTION_ORDER.length : 0,
                    `${p.label} on ${rel}: a refused action records no command`);
                const agent = await srv.api(`/api/v0/agents/${t.agent}`);
                assert.equal(agent.json.control, 'active');
            }
        }
    });

    /* Every agent the hub knows, as an admin sees them. */
    let agentCount = 0;
    const teamAgents = () => agentCount;

    /* Collects what a client receives on its topics for a while, then tells it apart. */
    async function wsFor(p, topics) {
        const c = await WsClient.connect(srv, { token: p.token });
        const subs = {};
        for (const topic of topics) {
            c.send({ op: 'subscribe', topic });
            subs[topic] = await c.next((m) => (m.type === 'subscribed' || m.type === 'error') && m.topic === topic,
                undefined, `the answer to subscribing to ${topic}`);
        }
        return { c, subs };
    }

    it('every role x own team / other team x every WebSocket topic', async () => {
        agentCount = (await srv.api('/api/v0/agents?limit=1000')).json.agents.length;
        for (const t of [teams.A, teams.B]) { // an open command for each commands:<id> snapshot
            const r = await srv.api(`/api/v0/agents/${t.agent}/assign`, { body: { task: 'ws' }, token: t.tokens.operator });
            assert.equal(r.status, 202, r.text);
        }
        for (const p of principals) {
            const own = p.own;
            const other = p.other;
            const topics = ['agents:all', `agent:${own.agent}`, `agent:${other.agent}`,
                `execution:${own.execution}`, `execution:${other.execution}`,
                `commands:${own.agent}`, `commands:${other.agent}`];
            const { c, subs } = await wsFor(p, topics);
            try {
                const agentToken = p.role === 'agent';
                const allowedTopic = (topic) => !agentToken || topic === `agent:${own.agent}` || topic === `commands:${own.agent}`;
                for (const topic of topics) {
                    if (allowedTopic(topic)) {
                        assert.equal(subs[topic].type, 'subscribed', `${p.label} ${topic}: ${JSON.stringify(subs[topic])}`);
                    } else {
                        assert.equal(subs[topic].type, 'error', `${p.label} ${topic}`);
                        assert.equal(subs[topic].code, 'forbidden', `${p.label} ${topic}`);
                    }
                }
                const snapshots = {};
                for (const topic of topics.filter(allowedTopic)) {
                    if (topic.startsWith('execution:')) continue;
                    snapshots[topic] = await c.next({ type: 'snapshot', topic }, undefined, `${p.label}: snapshot of ${topic}`);
                }
                const seesOther = p.role === 'admin';
                if (!agentToken) {
                    const all = snapshots['agents:all'];
                    const ids = all.agents.map((a) => a.agent_id);
                    assert.ok(ids.includes(own.agent), `${p.label}: agents:all lacks its own team`);
                    assert.equal(ids.includes(other.agent), seesOther, `${p.label}: agents:all and the other team`);
                    if (!seesOther) {
                        assert.ok(all.agents.every((a) => a.team_id === own.name));
                        assert.equal(all.totals.agents, all.agents.length, `${p.label}: totals over its team only`);
                    }
                    assert.equal(snapshots[`agent:${other.agent}`].agents.length, seesOther ? 1 : 0,
                        `${p.label}: agent:<other team's>`);
                    assert.equal(snapshots[`commands:${other.agent}`].commands.length > 0, seesOther,
                        `${p.label}: commands:<other team's>`);
                }
                assert.equal(snapshots[`agent:${own.agent}`].agents.length, 1);
                assert.ok(snapshots[`commands:${own.agent}`].commands.length > 0, `${p.label}: own open commands`);

                // Updates of the other team first, then of its own: when its own have arrived,
                // the other team's would have too.
                for (const t of [other, own]) {
                    const hb = await srv.api('/api/v0/heartbeats', {
                        // New figures, so that the totals change and are pushed.
                        body: makeHeartbeat(t.agent, { metrics: { cost_usd: Math.random() * 100 } }),
                        token: t.tokens.agent,
                    });
                    assert.equal(hb.status, 200, hb.text);
                    const tr = await srv.api('/api/v0/traces', { body: [decision(t.agent, t.execution)], token: t.tokens.agent });
                    assert.equal(tr.status, 200, tr.text);
                    const cmd = await srv.api(`/api/v0/agents/${t.agent}/pause`, { method: 'POST', token: t.tokens.operator });
                    assert.equal(cmd.status, 202, cmd.text);
                    const back = await srv.api(`/api/v0/agents/${t.agent}/resume`, { method: 'POST', token: t.tokens.operator });
                    assert.equal(back.status, 202, back.text);
                }
                await c.next((m) => m.type === 'command' && m.topic === `commands:${own.agent}` && m.command.action === 'resume',
                    undefined, `${p.label}: the resume command of its own agent`);
                await c.next((m) => m.type === 'delta' && m.agent_id === own.agent, undefined,
                    `${p.label}: a delta of agent:${own.agent}`);
                if (!agentToken) {
                    await c.next((m) => m.type === 'decision' && m.topic === `execution:${own.execution}`, undefined,
                        `${p.label}: the decision of its own execution`);
                }
                await sleep(200);
                const aboutOther = c.log.map((e) => e.msg).filter((m) => JSON.stringify(m).includes(other.agent) ||
                    JSON.stringify(m).includes(other.execution) || JSON.stringify(m).includes(other.name));
                if (seesOther) {
                    assert.ok(aboutOther.some((m) => m.type === 'command' && m.topic === `commands:${other.agent}`));
                    assert.ok(aboutOther.some((m) => m.type === 'decision' && m.topic === `execution:${other.execution}`));
                } else {
                    // Only the refusals (naming the topic) and the empty snapshots may name it.
                    const leaks = aboutOther.filter((m) => !(m.type === 'error' || m.type === 'subscribed' ||
                        (m.type === 'snapshot' && (m.agents?.length ?? m.commands.length) === 0) || m.type === 'reload'));
                    assert.deepEqual(leaks, [], `${p.label} received another team's updates`);
                }
                // Totals (pushed on each tick) count the caller's team only: its agent and sibling.
                if (!agentToken) {
                    const totals = await c.next({ type: 'totals' }, 5000, `${p.label}: totals`);
                    assert.equal(totals.agents, seesOther ? teamAgents() : 2, `${p.label}: totals ${JSON.stringify(totals)}`);
                }
            } finally {
                await closeAll(c);
            }
        }
    });
});
