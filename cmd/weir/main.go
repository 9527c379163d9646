// Command weir is the Weir integration hub: see `weir help`.
package main

import (
	"os"

	"github.com/weirhq/weir/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
