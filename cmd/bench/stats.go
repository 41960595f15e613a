package main

import (
	"math"
	"slices"
	"time"
)

// latency summarises a set of durations, in milliseconds.
type latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return latency{
		N:   len(s),
		P50: ms(pick(s, 0.50)),
		P95: ms(pick(s, 0.95)),
		P99: ms(pick(s, 0.99)),
		Max: ms(s[len(s)-1]),
	}
}

// percentile returns the q-quantile of ds (nearest rank), 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return pick(s, q)
}

// pick is the nearest-rank quantile of sorted s.
func pick(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// ms is d in milliseconds, rounded to microseconds.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// mb is n bytes in MiB, with one decimal.
func mb(n int64) float64 { return math.Round(float64(n)/(1<<20)*10) / 10 }

// round2 keeps two decimals.
func round2(f float64) float64 { return math.Round(f*100) / 100 }
