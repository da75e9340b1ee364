package server

import (
	"context"
	"net"
	"net/http"
	"time"
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
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	return nil
}
