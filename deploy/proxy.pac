// Proxy auto-config for staff browsers (serve it as application/x-ns-proxy-autoconfig,
// or point group policy / WPAD at it). Everything goes through socialgate; only social
// networking sites are inspected, all other HTTPS is passed through untouched.
function FindProxyForURL(url, host) {
  if (isPlainHostName(host) || shExpMatch(host, "*.internal.example.org")) {
    return "DIRECT";
  }
  return "PROXY socialgate.internal.example.org:8080";
}
