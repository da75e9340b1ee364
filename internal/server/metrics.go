package server

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// listenMetrics starts the separate /metrics listener when
// server.metrics_addr is set (the main router then has no /metrics route).
// It serves /metrics and nothing else. stop shuts it down; it is a no-op
// when no listener was configured.
func (s *Server) listenMetrics() (stop func(context.Context) error, err error) {
	addr := s.cfg.Server.MetricsAddr
	if addr == "" {
		return func(context.Context) error { return nil }, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.Server.IdleTimeout,
		// A scrape is small and quick: a client that takes longer is stuck.
		WriteTimeout: s.cfg.Server.WriteTimeout,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("metrics listener failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.logger.Info("metrics listening", "addr", ln.Addr().String())
	return srv.Shutdown, nil
}
