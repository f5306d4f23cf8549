// The test's single-page app: it knows only the BFF's routes and its cookie,
// never a token. The test calls these functions from DevTools.
async function call(path, opts) {
  const r = await fetch(path, opts);
  return r.status + " " + await r.text();
}
function api(headers) { return call("/api/hello", {headers: Object.assign({"X-CSRF": "1"}, headers || {})}); }
function apiNoCSRF() { return call("/api/hello", {}); }
function apiMany(n) { return Promise.all(Array.from({length: n}, () => api())).then(rs => JSON.stringify(rs)); }
function logout() { return call("/bff/logout", {method: "POST", headers: {"X-CSRF": "1"}}); }
function logoutNoCSRF() { return call("/bff/logout", {method: "POST"}); }
function user() { return call("/bff/user", {}); }
function session() { return call("/bff/session", {}); }
session().then(s => {
  document.getElementById("status").textContent = s.includes('"signed_in":true') ? "signed in" : "signed out";
});
