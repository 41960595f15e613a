package logevery

import (
	"strconv"
	"testing"
	"time"
)

func TestOneLinePerKeyAndInterval(t *testing.T) {
	l := New(time.Second)
	t0 := time.Unix(1000, 0)
	if ok, n := l.Allow("a", t0); !ok || n != 0 {
		t.Fatalf("first: %v %d", ok, n)
	}
	for i := range 5 {
		if ok, _ := l.Allow("a", t0.Add(time.Duration(i)*100*time.Millisecond)); ok {
			t.Fatalf("repeat %d allowed within the interval", i)
		}
	}
	if ok, _ := l.Allow("b", t0); !ok {
		t.Fatal("another key held back")
	}
	if ok, n := l.Allow("a", t0.Add(time.Second)); !ok || n != 5 {
		t.Fatalf("after the interval: %v, %d left out, want 5", ok, n)
	}
	// Many keys: memory stays bounded.
	for i := range 3 * maxKeys {
		l.Allow(strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second))
	}
	if len(l.keys) > maxKeys+1 {
		t.Fatalf("%d keys kept", len(l.keys))
	}
}
