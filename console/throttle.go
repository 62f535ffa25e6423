package console

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed sign-ins are throttled per client address: signinBurst failures
// at once, then one per signinRefill. A client over its budget is answered
// 429 with Retry-After, whatever token it sends, until the budget refills;
// a successful sign-in costs nothing. API tokens are long random secrets,
// so this is not what keeps them from being guessed: it keeps one client
// from filling the audit trail and the log with refusals.
const (
	signinBurst   = 10
	signinRefill  = 30 * time.Second
	maxThrottled  = 10000 // client addresses remembered at once
	throttleLimit = rate.Limit(1 / 30.0)
)

type throttle struct {
	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

func newThrottle() *throttle { return &throttle{clients: map[string]*rate.Limiter{}} }

// clientAddr is the address a request came from (without its port).
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// wait is how long addr must wait before its next sign-in attempt is
// read; zero when it may sign in now.
func (t *throttle) wait(addr string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.clients[addr]
	if l == nil {
		if len(t.clients) < maxThrottled {
			return 0
		}
		// Full of clients still paying for failures: a new address is
		// not remembered, so it is refused rather than let through free.
		t.forgetRefilled(now)
		if len(t.clients) >= maxThrottled {
			return signinRefill
		}
		return 0
	}
	if tokens := l.TokensAt(now); tokens < 1 {
		// Rounded to the millisecond: the float arithmetic of the bucket
		// must not turn 20 s into 21.
		return time.Duration((1 - tokens) * float64(signinRefill)).Round(time.Millisecond)
	}
	return 0
}

// failed charges addr one failed sign-in.
func (t *throttle) failed(addr string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.clients[addr]
	if l == nil {
		if len(t.clients) >= maxThrottled {
			t.forgetRefilled(now)
		}
		if len(t.clients) >= maxThrottled {
			return
		}
		l = rate.NewLimiter(throttleLimit, signinBurst)
		l.SetBurstAt(now, signinBurst) // a full bucket as of now, not of time zero
		t.clients[addr] = l
	}
	l.AllowN(now, 1)
}

// forgetRefilled drops the addresses whose budget is whole again.
func (t *throttle) forgetRefilled(now time.Time) {
	for a, l := range t.clients {
		if l.TokensAt(now) >= signinBurst {
			delete(t.clients, a)
		}
	}
}
