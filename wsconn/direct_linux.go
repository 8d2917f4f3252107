package wsconn

import (
	"syscall"
	"unsafe"
)

const directSupported = true

// peek reads what the socket holds into the guard's pending bytes (which
// gorilla reads first) and sets d.verdict; it returns false to wait for
// more.
func (d *direct) peek(fd uintptr) bool {
	g := d.c.guard
	if g.pend == nil {
		g.pend, g.poff = pendBufs.Get().(*[]byte), 0
	} else if g.poff > 0 {
		n := copy(*g.pend, (*g.pend)[g.poff:])
		*g.pend, g.poff = (*g.pend)[:n], 0
	}
	for {
		b := *g.pend
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		free := b[len(b):cap(b)]
		n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&free[0])), uintptr(len(free)),
			syscall.MSG_DONTWAIT, 0, 0)
		if errno != 0 || n == 0 {
			*g.pend = b
			if len(b) == 0 {
				g.releasePend()
			}
			if errno == syscall.EAGAIN || errno == syscall.EINTR {
				return false
			}
			// The end of the stream or an error: the reader goroutine
			// reads the socket again and sees it for itself.
			d.verdict = peekHandOff
			return true
		}
		b = b[:len(b)+int(n)]
		*g.pend = b
		if d.verdict = d.check(b); d.verdict != peekWait {
			return true
		}
		// Not enough yet. The socket may hold more than there was room
		// for, and the poller only reports new bytes: read on until it
		// has nothing.
	}
}
