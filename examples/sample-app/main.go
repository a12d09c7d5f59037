// Command sample-app is a small Go service that exposes net/http/pprof and can be told to burn
// CPU, hold memory and contend on a mutex on demand, and to leak: memory that climbs steadily and
// goroutines that never end (/leak). It is the target that kprof profiles in the examples and in
// the test suite: every pprof profile type has real content once /load has run.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/bits"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/* on http.DefaultServeMux
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	maxCPUSeconds  = 600
	maxHoldSeconds = 600
	maxMemMiB      = 2048
	maxSites       = 1 << 20
	siteBytes      = 64
	maxWorkers     = 256
	mebibyte       = 1 << 20
	pageSize       = 4096

	maxLeakMiBPerSecond        = 256
	maxLeakGoroutinesPerSecond = 10000
	maxLeakSeconds             = 3600
	maxLeakedGoroutines        = 200000
	leakTick                   = 100 * time.Millisecond
)

// loadRequest is what one call to /load asked for, after defaults and limits are applied.
type loadRequest struct {
	ID          int64   `json:"id"`
	CPUSeconds  float64 `json:"cpuSeconds"`
	Workers     int     `json:"workers"`
	MemMiB      int     `json:"memMiB"`
	Sites       int     `json:"sites"`
	HoldSeconds float64 `json:"holdSeconds"`
	Status      string  `json:"status"`
}

// loadState is shared by the workers of all loads. Its mutex is deliberately taken often and
// held for a moment so that the mutex and block profiles record contention.
type loadState struct {
	mu         sync.Mutex
	iterations uint64
	sampled    uint64
	digest     [sha256.Size]byte
}

type app struct {
	baseCtx    context.Context
	nextID     int64
	loadActive int64
	shared     loadState
	leak       leakState
}

// leakRequest is what one call to /leak asked for: a rate of memory and of goroutines, for a time.
type leakRequest struct {
	MemMiBPerSecond     float64 `json:"memMiBPerSecond"`
	GoroutinesPerSecond float64 `json:"goroutinesPerSecond"`
	Seconds             float64 `json:"seconds"`
	Status              string  `json:"status"`
}

// leakState holds what the leaks have taken: memory blocks that stay referenced and goroutines
// parked on a channel, until /leak?stop=1 lets everything go.
type leakState struct {
	mu         sync.Mutex
	blocks     [][]byte
	bytes      int64
	goroutines int64
	release    chan struct{} // closed by stop: the parked goroutines return
	cancel     context.CancelFunc
}

func main() {
	defaultAddr := os.Getenv("ADDR")
	if defaultAddr == "" {
		defaultAddr = ":6060"
	}
	addr := flag.String("addr", defaultAddr, "address to listen on (host:port; port 0 picks a free one)")
	flag.Parse()

	// Sample a fifth of contention events and blocking events longer than ~10µs so the mutex
	// and block profiles are not empty.
	runtime.SetMutexProfileFraction(5)
	runtime.SetBlockProfileRate(10000)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	a := &app{baseCtx: ctx}
	http.HandleFunc("/healthz", a.handleHealthz)
	http.HandleFunc("/load", a.handleLoad)
	http.HandleFunc("/stats", a.handleStats)
	http.HandleFunc("/leak", a.handleLeak)

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen on %s: %v", *addr, err)
	}
	// Print the bound address (not the requested one) so callers using port 0 learn the port.
	fmt.Fprintf(os.Stdout, "listening on %s\n", listener.Addr().String())
	_ = os.Stdout.Sync()

	server := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()

	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("serve: %v", err)
		}
	case <-ctx.Done():
		log.Printf("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := server.Shutdown(shutdownCtx); err != nil {
			log.Printf("shutdown: %v", err)
		}
	}
}

func (a *app) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}

func (a *app) handleStats(w http.ResponseWriter, _ *http.Request) {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"pid":              os.Getpid(),
		"goroutines":       runtime.NumGoroutine(),
		"heapAllocBytes":   mem.HeapAlloc,
		"loadActive":       atomic.LoadInt64(&a.loadActive),
		"leakedBytes":      atomic.LoadInt64(&a.leak.bytes),
		"leakedGoroutines": atomic.LoadInt64(&a.leak.goroutines),
	})
}

// handleLeak starts a leak (memory and/or goroutines at a steady rate, for a number of seconds)
// in place of the one running, or with stop=1 ends the leak and lets go of all it took.
func (a *app) handleLeak(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("stop") == "1" {
		a.leak.stop()
		debug.FreeOSMemory()
		writeJSON(w, http.StatusOK, leakRequest{Status: "stopped"})
		return
	}
	req, err := parseLeakRequest(q.Get("memMiBPerSecond"), q.Get("goroutinesPerSecond"), q.Get("seconds"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	a.leak.start(a.baseCtx, req)
	req.Status = "started"
	writeJSON(w, http.StatusAccepted, req)
}

func parseLeakRequest(mem, goroutines, seconds string) (leakRequest, error) {
	req := leakRequest{}
	var err error
	if req.MemMiBPerSecond, err = floatParam(mem, 0, 0, maxLeakMiBPerSecond, "memMiBPerSecond"); err != nil {
		return req, err
	}
	if req.GoroutinesPerSecond, err = floatParam(
		goroutines, 0, 0, maxLeakGoroutinesPerSecond, "goroutinesPerSecond"); err != nil {
		return req, err
	}
	if req.Seconds, err = floatParam(seconds, 600, 0, maxLeakSeconds, "seconds"); err != nil {
		return req, err
	}
	return req, nil
}

// start replaces the running leak (what it took is kept) with one at the rates of req.
func (l *leakState) start(parent context.Context, req leakRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
	}
	if l.release == nil {
		l.release = make(chan struct{})
	}
	ctx, cancel := context.WithTimeout(parent, time.Duration(req.Seconds*float64(time.Second)))
	l.cancel = cancel
	go l.run(ctx, req, l.release)
}

// stop ends the running leak, drops the memory it holds and ends its goroutines.
func (l *leakState) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
	}
	if l.release != nil {
		close(l.release)
		l.release = nil
	}
	l.blocks = nil
	atomic.StoreInt64(&l.bytes, 0)
}

// run takes memory and starts goroutines every tick, in amounts that add up to the rates asked
// for, so memory climbs in a straight line rather than in steps a second apart.
func (l *leakState) run(ctx context.Context, req leakRequest, release chan struct{}) {
	ticker := time.NewTicker(leakTick)
	defer ticker.Stop()
	perTick := leakTick.Seconds()
	var bytesOwed, goroutinesOwed float64
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		bytesOwed += req.MemMiBPerSecond * mebibyte * perTick
		goroutinesOwed += req.GoroutinesPerSecond * perTick
		if whole := int(bytesOwed); whole >= pageSize {
			bytesOwed -= float64(whole)
			l.leakMemory(ctx, whole)
		}
		for ; goroutinesOwed >= 1; goroutinesOwed-- {
			if atomic.LoadInt64(&l.goroutines) >= maxLeakedGoroutines {
				goroutinesOwed = 0
				break
			}
			atomic.AddInt64(&l.goroutines, 1)
			go leakedGoroutine(release, &l.goroutines)
		}
	}
}

// leakMemory takes size bytes that stay referenced, every page written so that they are resident.
func (l *leakState) leakMemory(ctx context.Context, size int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A leak that was stopped or replaced meanwhile takes nothing more (stop cancels under mu).
	if ctx.Err() != nil || atomic.LoadInt64(&l.bytes)+int64(size) > maxMemMiB*mebibyte {
		return
	}
	block := make([]byte, size)
	for off := 0; off < len(block); off += pageSize {
		block[off] = byte(off)
	}
	l.blocks = append(l.blocks, block)
	atomic.AddInt64(&l.bytes, int64(size))
}

// leakedGoroutine waits until the leak is stopped; in a goroutine profile each shows up here.
func leakedGoroutine(release chan struct{}, count *int64) {
	<-release
	atomic.AddInt64(count, -1)
}

func (a *app) handleLoad(w http.ResponseWriter, r *http.Request) {
	req, err := parseLoadRequest(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	req.ID = atomic.AddInt64(&a.nextID, 1)
	atomic.AddInt64(&a.loadActive, 1)
	done := make(chan string, 1)
	go func() {
		defer atomic.AddInt64(&a.loadActive, -1)
		done <- a.runLoad(req)
	}()

	if r.URL.Query().Get("wait") != "1" {
		req.Status = "started"
		writeJSON(w, http.StatusAccepted, req)
		return
	}
	select {
	case req.Status = <-done:
		writeJSON(w, http.StatusOK, req)
	case <-r.Context().Done():
		// The client went away; the load carries on by itself.
	}
}

func parseLoadRequest(r *http.Request) (loadRequest, error) {
	q := r.URL.Query()
	req := loadRequest{CPUSeconds: 10, Workers: runtime.GOMAXPROCS(0)}
	var err error
	if req.CPUSeconds, err = floatParam(q.Get("cpu"), req.CPUSeconds, 0, maxCPUSeconds, "cpu"); err != nil {
		return req, err
	}
	workers, err := floatParam(q.Get("workers"), float64(req.Workers), 1, maxWorkers, "workers")
	if err != nil {
		return req, err
	}
	req.Workers = int(workers)
	mem, err := floatParam(q.Get("mem"), 0, 0, maxMemMiB, "mem")
	if err != nil {
		return req, err
	}
	req.MemMiB = int(mem)
	sites, err := floatParam(q.Get("sites"), 0, 0, maxSites, "sites")
	if err != nil {
		return req, err
	}
	req.Sites = int(sites)
	if req.HoldSeconds, err = floatParam(q.Get("hold"), req.CPUSeconds, 0, maxHoldSeconds, "hold"); err != nil {
		return req, err
	}
	return req, nil
}

func floatParam(raw string, fallback, min, max float64, name string) (float64, error) {
	if raw == "" {
		return fallback, nil
	}
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil || v != v {
		return 0, fmt.Errorf("%s: not a number: %q", name, raw)
	}
	if v < min || v > max {
		return 0, fmt.Errorf("%s: %v is outside [%v, %v]", name, v, min, max)
	}
	return v, nil
}

// runLoad burns CPU and holds memory as asked, returning "done", or "cancelled" when the
// process is shutting down.
func (a *app) runLoad(req loadRequest) string {
	ctx := a.baseCtx
	var wg sync.WaitGroup

	wg.Add(1)
	go func() {
		defer wg.Done()
		holdMemory(ctx, req.MemMiB, req.Sites, time.Duration(req.HoldSeconds*float64(time.Second)))
	}()

	deadline := time.Now().Add(time.Duration(req.CPUSeconds * float64(time.Second)))
	// The sampler competes with the workers for the shared lock, so even a single worker
	// produces mutex contention.
	wg.Add(1)
	go func() {
		defer wg.Done()
		sampleProgress(ctx, deadline, &a.shared)
	}()
	for i := 0; i < req.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			burnCPU(ctx, deadline, &a.shared)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return "cancelled"
	}
	return "done"
}

// burnCPU spins until the deadline, hashing outside the shared lock most of the time and
// briefly inside it, so that several workers contend for it.
func burnCPU(ctx context.Context, deadline time.Time, shared *loadState) {
	var local [sha256.Size]byte
	for round := 0; ; round++ {
		for i := 0; i < 200; i++ {
			local = sha256.Sum256(local[:])
		}
		shared.mu.Lock()
		for i := 0; i < 20; i++ {
			shared.digest = sha256.Sum256(append(shared.digest[:], local[:]...))
		}
		shared.iterations++
		shared.mu.Unlock()
		if round%16 == 0 && (ctx.Err() != nil || time.Now().After(deadline)) {
			return
		}
	}
}

// sampleProgress reads the shared counters every millisecond until the deadline.
func sampleProgress(ctx context.Context, deadline time.Time, shared *loadState) {
	ticker := time.NewTicker(time.Millisecond)
	defer ticker.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		shared.mu.Lock()
		shared.sampled = shared.iterations
		shared.mu.Unlock()
	}
}

// holdMemory allocates mib mebibytes, writes to every page so they are resident, and makes one
// small allocation from each of `sites` call stacks; keeps them all for hold, then drops them and
// returns the memory to the OS.
func holdMemory(ctx context.Context, mib int, sites int, hold time.Duration) {
	if mib <= 0 && sites <= 0 {
		return
	}
	blocks := allocateHeld(mib)
	spread := allocateSites(sites)
	timer := time.NewTimer(hold)
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	runtime.KeepAlive(blocks)
	runtime.KeepAlive(spread)
	debug.FreeOSMemory()
}

// allocateSites makes `sites` allocations of siteBytes, each from a call stack of its own: the
// bits of its index choose, frame by frame, which of spreadLeft and spreadRight is called. A heap
// profile then has a sample per site, as a large program's has one per allocation site (every one
// of them is recorded when the app runs with GODEBUG=memprofilerate=1).
func allocateSites(sites int) [][]byte {
	if sites <= 0 {
		return nil
	}
	depth := bits.Len(uint(sites - 1))
	held := make([][]byte, sites)
	for i := range held {
		held[i] = spreadLeft(uint(i), depth)
	}
	return held
}

//go:noinline
func spreadLeft(path uint, depth int) []byte {
	if depth == 0 {
		return make([]byte, siteBytes)
	}
	if path&1 == 0 {
		return spreadLeft(path>>1, depth-1)
	}
	return spreadRight(path>>1, depth-1)
}

//go:noinline
func spreadRight(path uint, depth int) []byte {
	if depth == 0 {
		return make([]byte, siteBytes)
	}
	if path&1 == 0 {
		return spreadLeft(path>>1, depth-1)
	}
	return spreadRight(path>>1, depth-1)
}

func allocateHeld(mib int) [][]byte {
	blocks := make([][]byte, mib)
	for i := range blocks {
		block := make([]byte, mebibyte)
		for off := 0; off < len(block); off += pageSize {
			block[off] = byte(i + off)
		}
		blocks[i] = block
	}
	return blocks
}

func writeJSON(w http.ResponseWriter, status int, body interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
