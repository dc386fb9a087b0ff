// A chat server in the Node `ws` idiom, as many real backends are: the first frame must be
// {"type": "auth", "token": …} (a token starting "good-"; anything else is closed with
// 4401, silence for 5 s with 4408), then {"type": "join", "room": …} answered by
// {"type": "joined"}; then each {"type": "chat", "id": N, "text": …} is acked to its
// sender by id ({"type": "ack", "id": N}) and broadcast to the room's other members
// without one ({"type": "message", "text": …}); every member gets {"type": "presence"}
// frames every 500 ms. Listens on 127.0.0.1, on $PORT or a port the system picks; prints
// `listening PORT` first. Stops on SIGTERM or Ctrl-C, and with EXIT_WITH_STDIN=1 when its
// stdin closes (so a test that dies does not leave it running).
'use strict';
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT || 0) });
const rooms = new Map(); // room -> Set of sockets

wss.on('connection', (ws) => {
  let state = 'new';
  let room = null;
  const silent = setTimeout(() => ws.close(4408, 'auth timeout'), 5000);
  ws.on('message', (data) => {
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      ws.send(JSON.stringify({ type: 'error', error: 'not json' }));
      return;
    }
    if (state === 'new') {
      clearTimeout(silent);
      if (msg.type !== 'auth' || typeof msg.token !== 'string' || !msg.token.startsWith('good-')) {
        ws.close(4401, 'unauthorized');
        return;
      }
      state = 'authed';
      ws.send(JSON.stringify({ type: 'auth_ok' }));
    } else if (state === 'authed' && msg.type === 'join') {
      room = String(msg.room);
      if (!rooms.has(room)) rooms.set(room, new Set());
      rooms.get(room).add(ws);
      state = 'joined';
      ws.send(JSON.stringify({ type: 'joined', room }));
    } else if (state === 'joined' && msg.type === 'chat') {
      ws.send(JSON.stringify({ type: 'ack', id: msg.id }));
      for (const member of rooms.get(room)) {
        if (member !== ws && member.readyState === 1) {
          member.send(JSON.stringify({ type: 'message', text: msg.text }));
        }
      }
    } else {
      ws.send(JSON.stringify({ type: 'error', error: `unexpected ${msg.type} while ${state}` }));
    }
  });
  ws.on('close', () => {
    clearTimeout(silent);
    if (room && rooms.has(room)) rooms.get(room).delete(ws);
  });
});

const presence = setInterval(() => {
  for (const members of rooms.values()) {
    for (const ws of members) {
      if (ws.readyState === 1) ws.send(JSON.stringify({ type: 'presence', online: members.size }));
    }
  }
}, 500);

wss.on('listening', () => {
  console.log(`listening ${wss.address().port}`);
});

const stop = () => {
  clearInterval(presence);
  wss.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (process.env.EXIT_WITH_STDIN) {
  process.stdin.on('end', stop);
  process.stdin.resume();
}
