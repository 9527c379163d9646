package deliver_test

import (
	"net/netip"
	"testing"

	"github.com/weirhq/weir/internal/deliver"
)

func TestBlocked(t *testing.T) {
	blocked := []string{
		"127.0.0.1", "127.1.2.3", "::1", // loopback
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", // RFC 1918
		"fc00::1", "fd12:3456::1", // ULA
		"169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0", // link-local, metadata
		"0.0.0.0", "::", "0.1.2.3", // unspecified, this network
		"100.64.0.1", "100.127.255.254", // CGNAT
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2", // multicast
		"255.255.255.255", "240.0.0.1", "198.18.0.1", "192.0.0.8", // reserved
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.1.2.3", // IPv4-mapped
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", // NAT64 of loopback and metadata
		"2002:7f00:1::1", "2002:a9fe:a9fe::", // 6to4 of loopback and metadata
		"::127.0.0.1", "fec0::1", "2001:db8::1",
	}
	allowed := []string{
		"8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.1", "172.32.0.1",
		"169.255.0.1", "2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8",
		"64:ff9b::808:808", "2002:808:808::1",
	}
	for _, s := range blocked {
		if !deliver.Blocked(netip.MustParseAddr(s)) {
			t.Errorf("Blocked(%s) = false", s)
		}
	}
	for _, s := range allowed {
		if deliver.Blocked(netip.MustParseAddr(s)) {
			t.Errorf("Blocked(%s) = true", s)
		}
	}
	if !deliver.Blocked(netip.Addr{}) {
		t.Error("the zero Addr must be blocked")
	}
}
