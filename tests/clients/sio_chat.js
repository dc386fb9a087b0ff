// A Socket.IO chat server in the `socket.io` package's own idiom: an auth middleware that
// refuses a handshake whose `auth.token` does not start with "good-" (the client gets a
// connect_error "unauthorized"), an acked `echo`, an acked `join` to a room, a `chat`
// event broadcast to the room (`socket.to(room)` — everyone but the sender) and acked to
// the sender, and `presence` events to every socket every second. With BLOCK_EVERY=N and
// BLOCK_MS=M, every N-th `echo` busy-waits M ms first (a handler that blocks the event
// loop). With KICK_AFTER=N, a socket is disconnected from the namespace (kicked) after its
// N-th chat. Listens on 127.0.0.1, on $PORT or a port the system picks; prints `listening
// PORT` first. Stops on SIGTERM or Ctrl-C, and with EXIT_WITH_STDIN=1 when its stdin
// closes (so a test that dies does not leave it running).
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const blockEvery = Number(process.env.BLOCK_EVERY || 0);
const blockMs = Number(process.env.BLOCK_MS || 0);
const kickAfter = Number(process.env.KICK_AFTER || 0);
let echoes = 0;

const server = http.createServer();
const io = new Server(server, { pingInterval: Number(process.env.PING_INTERVAL || 25000) });

io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (typeof token === 'string' && token.startsWith('good-')) return next();
  next(new Error('unauthorized'));
});

io.on('connection', (socket) => {
  let chats = 0;
  socket.on('echo', (data, ack) => {
    echoes += 1;
    if (blockEvery > 0 && echoes % blockEvery === 0) {
      const until = Date.now() + blockMs;
      while (Date.now() < until) { /* the event loop is blocked */ }
    }
    if (typeof ack === 'function') ack(data);
  });
  // A streamed answer: three `answer` events carrying the question's id, the last done.
  socket.on('ask', (q) => {
    for (let part = 1; part <= 3; part++) {
      setTimeout(() => socket.emit('answer', { id: q.id, part, done: part === 3 }), 20 * part);
    }
  });
  // A binary event (its attachment in a frame of its own), then a packet no Socket.IO
  // client can decode, written raw to the WebSocket under the socket.
  socket.on('binary', (_data, ack) => {
    socket.emit('file', Buffer.from([1, 2, 3]), 'name.bin');
    if (typeof ack === 'function') ack({ ok: true });
  });
  socket.on('garble', () => socket.conn.transport.socket.send('4x["not a packet"]'));
  socket.on('join', (room, ack) => {
    socket.join(String(room));
    socket.data.room = String(room);
    if (typeof ack === 'function') ack({ ok: true, room: String(room) });
  });
  socket.on('chat', (msg, ack) => {
    if (socket.data.room) socket.to(socket.data.room).emit('chat', msg);
    if (typeof ack === 'function') ack({ ok: true });
    chats += 1;
    if (kickAfter > 0 && chats >= kickAfter) socket.disconnect(true);
  });
});

const presence = setInterval(() => io.emit('presence', { online: io.engine.clientsCount }), 1000);

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});

function stop() {
  clearInterval(presence);
  io.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (process.env.EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', stop);
  process.stdin.resume();
}
