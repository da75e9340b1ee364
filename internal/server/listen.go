package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
)

// Serve listens on cfg.Addr until ctx is cancelled, then shuts down
// gracefully. ready, when not nil, receives the bound address.
func (s *Server) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	stopMetrics, err := s.listenMetrics()
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics(context.Background())
	sc := s.cfg.Server
	srv := &http.Server{
		Handler: newTransferLimits(s.handler, transferPolicy{
			minUploadRate: int64(sc.MinUploadRate),
			rateWindow:    sc.UploadRateWindow,
			writeStall:    sc.WriteTimeout,
		}, s.logger),
		ReadHeaderTimeout: sc.ReadHeaderTimeout,
		IdleTimeout:       sc.IdleTimeout,
		// ReadTimeout and WriteTimeout stay unset on purpose: they bound a
		// whole request or response, so they would cut a healthy multi-GiB
		// model transfer. transferLimits bounds slowness and stalls instead.
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Shutdown closes the listener at once (new connections are refused)
	// and waits for requests in flight, uploads included, to finish.
	s.logger.Info("shutting down", "timeout", sc.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), sc.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Requests still running past the timeout are cut, not waited for.
		srv.Close()
		return fmt.Errorf("shutdown: requests still in flight after %s: %w", sc.ShutdownTimeout, err)
	}
	return nil
}
