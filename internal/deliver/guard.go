package deliver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"syscall"
)

// ErrBlocked is returned (wrapped) when a delivery would connect to an address the SSRF guard
// forbids: loopback, private, link-local (cloud metadata included), CGNAT, multicast,
// unspecified or reserved. Deliver marks it permanent: the endpoint's configuration, not the
// network, is at fault.
var ErrBlocked = errors.New("deliver: destination address not allowed")

// ErrURL is returned (wrapped) by CheckURL for an endpoint URL Weir cannot deliver to.
var ErrURL = errors.New("deliver: invalid endpoint URL")

// CheckURL validates an endpoint URL for configuration: absolute, scheme http or https, a host
// present, no fragment. It does not resolve the host; the SSRF guard runs at dial time on every
// connection, so a name that later resolves somewhere forbidden is still refused. The error
// never repeats the URL, which may carry credentials.
func CheckURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%w: does not parse", ErrURL)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("%w: scheme must be http or https", ErrURL)
	}
	if p.Hostname() == "" {
		return fmt.Errorf("%w: no host", ErrURL)
	}
	if p.Opaque != "" {
		return fmt.Errorf("%w: not a hierarchical URL", ErrURL)
	}
	return nil
}

// Reserved and internal ranges beyond what netip's predicates cover.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // CGNAT, often internal in clouds
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, includes broadcast
	netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("2001::/32"),      // Teredo: embeds arbitrary IPv4
	netip.MustParsePrefix("ff00::/8"),       // multicast (also caught by IsMulticast)
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, metadata (also IsLinkLocalUnicast)
	netip.MustParsePrefix("fe80::/10"),      // link-local (also IsLinkLocalUnicast)
	netip.MustParsePrefix("fc00::/7"),       // ULA (also IsPrivate)
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback (also IsLoopback)
	netip.MustParsePrefix("255.255.255.255/32"),
}

// Prefixes that embed an IPv4 address the guard must judge on its own.
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// Blocked reports whether the SSRF guard refuses connections to addr (when private destinations
// are not allowed). IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 address they
// carry.
func Blocked(addr netip.Addr) bool {
	addr = addr.WithZone("").Unmap()
	if !addr.IsValid() {
		return true
	}
	if addr.Is6() {
		switch {
		case nat64.Contains(addr):
			b := addr.As16()
			return Blocked(netip.AddrFrom4([4]byte(b[12:16])))
		case sixTo4.Contains(addr):
			b := addr.As16()
			return Blocked(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	if addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() ||
		addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsMulticast() ||
		addr.IsUnspecified() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// guardControl is a net.Dialer ControlContext: it runs after name resolution, on the very
// address about to be connected, for every connection (redirects are never followed, and a
// rebinding DNS answer is judged on the address it actually returned).
func guardControl(_ context.Context, network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %s", ErrBlocked, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address", ErrBlocked)
	}
	if Blocked(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrBlocked, ap.Addr().WithZone(""))
	}
	return nil
}
