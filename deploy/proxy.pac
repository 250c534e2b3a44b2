// Proxy auto-config for staff browsers (serve it as application/x-ns-proxy-autoconfig, or
// point group policy / WPAD at it). Everything goes through socialgate; only social
// networking sites are inspected, all other HTTPS is passed through untouched.
//
// Several proxy hosts (docs/deploying.md, "Several hosts"): each runs HAProxy on :3128 in
// front of its workers. Every browser gets all of them, in an order that starts at "its own"
// host, chosen by a hash of the machine's address, and then goes round the others: the
// browser uses the first that answers and moves to the next when one is down. The same
// machine keeps landing on the same host (its users' code-of-conduct acknowledgements are
// shared by the workers of one host), and the hosts share the staff evenly.
// There is deliberately no "DIRECT" at the end: with every proxy down, nothing goes out
// unfiltered.
// tests/test_proxy_pac.py evaluates this file.

var PROXIES = [
  "socialgate1.internal.example.org:3128",
  "socialgate2.internal.example.org:3128",
  "socialgate3.internal.example.org:3128"
];

// FNV-1a over the address's characters: small, deterministic, well spread for addresses
// that differ only in their last digits.
function socialgateHash(text) {
  var h = 2166136261;
  for (var i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = (h * 16777619) >>> 0;
  }
  return h;
}

function socialgateProxies(clientAddress) {
  var start = socialgateHash(clientAddress) % PROXIES.length;
  var order = [];
  for (var i = 0; i < PROXIES.length; i++) {
    order.push("PROXY " + PROXIES[(start + i) % PROXIES.length]);
  }
  return order.join("; ");
}

function FindProxyForURL(url, host) {
  if (isPlainHostName(host) || shExpMatch(host, "*.internal.example.org")) {
    return "DIRECT";
  }
  return socialgateProxies(myIpAddress());
}
