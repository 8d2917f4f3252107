// The chat page. It connects to /ws?name=NAME and speaks JSON:
//   to the server:   {"text": "..."}
//   from the server: {"kind": "welcome"|"join"|"leave"|"message", "name", "text", "users"}
//
// Query parameters: name=NAME picks the user name. For automated tests,
// say=TEXT sends TEXT once the user named by expect=NAME is online, and a
// message from that user is reported with a POST to /test/report (an
// endpoint only test servers have).
"use strict";

const params = new URLSearchParams(location.search);
const say = params.get("say");
const expect = params.get("expect");

const log = document.getElementById("log");
const usersList = document.getElementById("users");
const statusEl = document.getElementById("status");
const form = document.getElementById("form");
const input = document.getElementById("text");
const button = document.getElementById("send");

let me = null;      // our name, as the server made it unique
let said = false;   // test mode: say has been sent
let reported = false;

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(`${scheme}//${location.host}/ws?name=${encodeURIComponent(params.get("name") || "")}`);

function setStatus(text, cls) {
  statusEl.textContent = text;
  statusEl.className = "status " + cls;
}

function add(li) {
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 5;
  log.appendChild(li);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function notice(text) {
  const li = document.createElement("li");
  li.className = "notice";
  li.textContent = text;
  add(li);
}

function message(name, text) {
  const li = document.createElement("li");
  li.className = "msg" + (name === me ? " mine" : "");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = name;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  li.append(who, document.createTextNode(text), time);
  add(li);
}

function showUsers(users) {
  usersList.replaceChildren(...users.map((u) => {
    const li = document.createElement("li");
    li.textContent = u;
    if (u === me) li.className = "me";
    return li;
  }));
}

function send(text) {
  ws.send(JSON.stringify({ text }));
}

// Test mode: speak once the expected peer is there to hear it.
function maybeSay(users) {
  if (say && !said && (!expect || users.includes(expect))) {
    said = true;
    send(say);
  }
}

ws.addEventListener("open", () => {
  setStatus("connected", "open");
  input.disabled = button.disabled = false;
  input.focus();
});

ws.addEventListener("message", (e) => {
  const ev = JSON.parse(e.data);
  switch (ev.kind) {
    case "welcome":
      me = ev.name;
      document.title = `${me} · wsnursery chat`;
      {
        const others = ev.users.length - 1;
        notice(`Welcome, ${me}! ` + (others === 0 ? "Nobody else is here yet."
          : others === 1 ? "1 other person is online." : `${others} others are online.`));
      }
      showUsers(ev.users);
      maybeSay(ev.users);
      break;
    case "join":
      if (ev.name !== me) notice(`${ev.name} joined`);
      showUsers(ev.users);
      maybeSay(ev.users);
      break;
    case "leave":
      notice(`${ev.name} left`);
      showUsers(ev.users);
      break;
    case "message":
      message(ev.name, ev.text);
      if (expect && ev.name === expect && !reported) {
        reported = true;
        fetch("/test/report", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ name: me, from: ev.name, text: ev.text }),
        });
      }
      break;
  }
});

ws.addEventListener("close", (e) => {
  setStatus("disconnected", "closed");
  input.disabled = button.disabled = true;
  notice(`Disconnected (${e.code}${e.reason ? ": " + e.reason : ""}). Reload the page to join again.`);
});

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (text && ws.readyState === WebSocket.OPEN) {
    send(text);
    input.value = "";
  }
});
