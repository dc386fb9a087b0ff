// Records the WebSocket frames the real socket.io-client and a socket.io server exchange,
// for the codec test (tests/fixtures/socketio-frames.txt): a WebSocket proxy in the
// middle writes each frame as `> text` (client to server), `< text` (server to client) or
// `<b hex` / `>b hex` (binary). The client connects to `/` with auth, to `/chat`, joins a
// room (acked), sends a dozen acked echoes (multi-digit ack ids), gets a broadcast, a
// binary event and an acked binary reply, and is kicked from `/chat`.
//   node tests/clients/record_sio_frames.js > tests/fixtures/socketio-frames.txt
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { io: connect } = require('socket.io-client');
const { WebSocketServer, WebSocket } = require('ws');

const server = http.createServer();
const io = new Server(server, { pingInterval: 300, pingTimeout: 2000 });
io.use((socket, next) => (socket.handshake.auth.token === 'good-1' ? next() : next(new Error('unauthorized'))));
io.on('connection', (socket) => {
  socket.on('echo', (data, ack) => ack(data));
  socket.on('join', (room, ack) => { socket.join(room); ack({ ok: true, room }); });
  socket.on('file', (ack) => ack(Buffer.from([1, 2, 3])));
  socket.on('chat', (msg) => io.to('r1').emit('chat', msg));
  socket.emit('presence', { online: 1 });
});
io.of('/chat').on('connection', (socket) => {
  socket.emit('welcome', Buffer.from('hi'), 'text');
  setTimeout(() => socket.disconnect(true), 100);
});

const lines = [];
const proxy = new WebSocketServer({ port: 0, host: '127.0.0.1' });
proxy.on('connection', (client, req) => {
  const upstream = new WebSocket(`ws://127.0.0.1:${server.address().port}${req.url}`);
  const queue = [];
  const log = (dir, data, binary) =>
    lines.push(binary ? `${dir}b ${Buffer.from(data).toString('hex')}` : `${dir} ${data.toString()}`);
  upstream.on('open', () => queue.splice(0).forEach((m) => upstream.send(m.data, { binary: m.binary })));
  client.on('message', (data, binary) => {
    log('>', data, binary);
    if (upstream.readyState === 1) upstream.send(data, { binary });
    else queue.push({ data, binary });
  });
  upstream.on('message', (data, binary) => {
    log('<', data, binary);
    client.send(data, { binary });
  });
  client.on('close', () => upstream.close());
  upstream.on('close', () => client.close());
});

server.listen(0, '127.0.0.1', async () => {
  const url = `http://127.0.0.1:${proxy.address().port}`;
  const opts = { transports: ['websocket'], auth: { token: 'good-1' }, reconnection: false };
  const socket = connect(url, opts);
  const presence = new Promise((r) => socket.once('presence', r));
  await new Promise((r) => socket.on('connect', r));
  await presence;
  await socket.emitWithAck('join', 'r1');
  for (let i = 0; i < 12; i++) await socket.emitWithAck('echo', { n: i, text: 'hi "there"' });
  const got = new Promise((r) => socket.once('chat', r));
  socket.emit('chat', { id: 5000000012, text: 'hi 5000000012 from 4' });
  await got;
  await socket.emitWithAck('file');
  await new Promise((r) => socket.io.once('ping', r)); // the manager hears the server's ping
  const chat = connect(`${url}/chat`, opts);
  await new Promise((r) => chat.on('disconnect', r));
  socket.close();
  setTimeout(() => {
    process.stdout.write(lines.join('\n') + '\n');
    process.exit(0);
  }, 100);
});
setTimeout(() => { console.error('timed out'); process.exit(1); }, 10000);
