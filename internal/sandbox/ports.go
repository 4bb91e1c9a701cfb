package sandbox

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// checkPortFree fails with a one-line error naming the fix when
// 127.0.0.1:port is taken.
func checkPortFree(port int, what, fix string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("port %d (%s) is already in use: %s", port, what, fix)
		}
		return fmt.Errorf("cannot listen on port %d (%s): %w", port, what, err)
	}
	return ln.Close()
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
