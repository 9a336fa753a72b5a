// IP address syntax, pure (the core does not import node:net). Same answers as node:net isIP for the forms below.

const V4_PART = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** Dotted-quad IPv4, no leading zeros. */
export function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => V4_PART.test(p));
}

/** IPv6 in any RFC 4291 text form, including `::` compression, an embedded IPv4 tail and a `%zone`. */
export function isIPv6(s: string): boolean {
  let addr = s;
  const zone = addr.indexOf('%');
  if (zone >= 0) {
    if (!/^[0-9A-Za-z._~-]+$/.test(addr.slice(zone + 1))) return false;
    addr = addr.slice(0, zone);
  }
  let groupsAvailable = 8;
  const lastColon = addr.lastIndexOf(':');
  if (lastColon >= 0 && addr.slice(lastColon + 1).includes('.')) {
    if (!isIPv4(addr.slice(lastColon + 1))) return false;
    addr = addr.slice(0, lastColon + 1) + '0';
    groupsAvailable = 7;
  }
  const hex = /^[0-9A-Fa-f]{1,4}$/;
  const halves = addr.split('::');
  if (halves.length > 2) return false;
  const groups = (h: string): string[] | undefined => {
    if (h === '') return [];
    const g = h.split(':');
    return g.every((x) => hex.test(x)) ? g : undefined;
  };
  if (halves.length === 1) {
    const g = groups(addr);
    return g !== undefined && g.length === groupsAvailable;
  }
  const left = groups(halves[0]);
  const right = groups(halves[1]);
  if (!left || !right) return false;
  // The IPv4 tail was replaced by one group "0", so count it once against 8.
  const used = left.length + right.length + (groupsAvailable === 7 ? 1 : 0);
  return used <= 7;
}

/** 4, 6 or 0, like node:net isIP. */
export function ipVersion(s: string): 0 | 4 | 6 {
  return isIPv4(s) ? 4 : isIPv6(s) ? 6 : 0;
}

/**
 * 4 or 6 when `s` is an address another machine can be pointed at: dotted-quad IPv4, or IPv6 text without a `%zone`
 * (a zone names an interface of one host, so it means nothing to a peer); 0 otherwise. The one grammar for a gateway's
 * publicIP, shared by the validator and the planner, and for addresses read back from annotations.
 */
export function usableIPVersion(s: string): 0 | 4 | 6 {
  return s.includes('%') ? 0 : ipVersion(s);
}

/** Whether `s` is a usable address (see usableIPVersion). */
export function isUsableIP(s: string): boolean {
  return usableIPVersion(s) !== 0;
}
