// The sample app of `latchkey bff --dev`. It never sees a token: the session is an
// HttpOnly cookie, and every call that the BFF proxies or that changes state carries
// X-CSRF: 1 (a header a cross-site form cannot send).
"use strict";

const $ = (id) => document.getElementById(id);
const show = (id, on) => { $(id).hidden = !on; };

async function getJSON(path, opts) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin", headers: { "X-CSRF": "1" } }, opts));
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
  return { status: res.status, body: body };
}

async function refresh() {
  const s = await getJSON("/bff/session");
  const signedIn = s.status === 200 && s.body && s.body.signed_in;
  show("login", !signedIn);
  show("call", signedIn);
  show("logout", signedIn);
  if (!signedIn) {
    $("status").textContent = "Signed out.";
    $("user").textContent = "-";
    return;
  }
  $("status").textContent = "Signed in until " + new Date(s.body.expires_at * 1000).toLocaleString() + ".";
  const u = await getJSON("/bff/user");
  $("user").textContent = JSON.stringify(u.body, null, 2);
}

$("call").addEventListener("click", async () => {
  const r = await getJSON("/api/hello");
  $("api").textContent = r.status + " " + JSON.stringify(r.body, null, 2);
  if (r.status === 401) refresh();
});

$("logout").addEventListener("click", async () => {
  await fetch("/bff/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF": "1" } });
  $("api").textContent = "-";
  refresh();
});

refresh().catch((e) => { $("status").textContent = "Error: " + e; });
