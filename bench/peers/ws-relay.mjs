// ws-relay.mjs - the comparison peer for the hub benchmark: heartbeats in over HTTP, out to every
// WebSocket client, written the way a typical Node.js user would write it (node:http + `ws`).
//
//   node bench/peers/ws-relay.mjs --port 8090 [--host 127.0.0.1]
//
// POST /api/v0/heartbeats with a JSON body answers 200 after the body has been parsed and sent to
// every open WebSocket client (any path, same port). With AEI_TOKEN set in the environment, POSTs
// must carry `Authorization: Bearer $AEI_TOKEN` (401 otherwise); WebSocket clients are not
// checked. There is no store, no per-agent state, no subscription and no backpressure handling:
// that is the point of the comparison. scripts/bench-hub.sh runs it next to aeid.
import http from 'node:http';
import { WebSocketServer, WebSocket } from 'ws';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = arg('--host', process.env.HOST || '127.0.0.1');
const port = Number(arg('--port', process.env.PORT || '8090'));
const token = process.env.AEI_TOKEN || '';

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/api/v0/heartbeats') {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"not_found"}}');
    return;
  }
  if (token && req.headers.authorization !== `Bearer ${token}`) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"unauthorized"}}');
    return;
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => {
    body += chunk;
  });
  req.on('end', () => {
    try {
      JSON.parse(body);
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"invalid_json"}}');
      return;
    }
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(body);
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
});

const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => {
  ws.on('error', () => {});
});

server.listen(port, host, () => {
  console.log(`ws-relay: listening on http://${host}:${port} (POST /api/v0/heartbeats, WebSocket on any path)`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const client of wss.clients) client.terminate();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
