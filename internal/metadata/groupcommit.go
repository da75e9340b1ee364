package metadata

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stagegate/stagegate/audit"
	"github.com/stagegate/stagegate/registry"
)

// Group commit of the audit chain.
//
// Every audit append serialises its environment's writers from the moment
// it takes the chain's lock until its transaction commits (insertAudit):
// on PostgreSQL that is three round trips and a WAL flush per event, during
// which every other writer of the environment waits. With 32 clients
// publishing small artifacts that lock, not storage, was the ceiling
// (issue #18: 44 publishes/s, p99 1.1 s).
//
// The two appends a publish makes (the blob upload's event and the
// version's, with the version row) therefore queue per environment, and
// a few goroutines (chainLanes) each commit whatever has queued as one
// transaction: the jobs' version statements, then the lock once, the head
// once, the events linked in queue order, one commit. The busier the
// environment, the larger the batches. Nothing about what is written changes: each
// version still appears together with its event, the chain links each event
// to the one committed before it, ids grow in commit order, and other
// writers (promotions, keys, other replicas) take the same lock as before.
//
// A batch is all or nothing, so one job must not fail the others: a job
// refused cleanly (version_exists, where no statement failed) is dropped
// from the batch and answered alone; when the batch fails for any other
// reason every job is run again in a transaction of its own, exactly as
// without batching, and gets its own outcome.

// maxChainBatch bounds the jobs of one transaction.
const maxChainBatch = 64

// chainLanes is how many batch transactions of one environment may be in
// flight at once. Their version statements run in parallel, as separate
// publishes' did before batching; only their audit sections take turns.
// One lane would make every statement of every publish wait for the batch
// before it.
const chainLanes = 4

// chainTimeout bounds one batch transaction. Jobs run on the batch's
// context, not their callers': one caller going away must not abort the
// others' commit, and an audit write must not be lost because its client
// left (httpapi records with a context that is never cancelled, too).
const chainTimeout = time.Minute

// chainJob is one audit event to append, with the version to commit in the
// same transaction (rec nil: the event alone).
type chainJob struct {
	rec *registry.VersionRecord
	ev  audit.Event

	// Results, valid once done is closed.
	out     registry.VersionRecord
	created bool
	id      int64
	err     error
	done    chan struct{}
}

// chainQueue is one environment's queue of jobs; running counts the
// goroutines draining it (at most chainLanes).
type chainQueue struct {
	mu      sync.Mutex
	pending []*chainJob
	running int
}

// chained queues job on env's chain and waits for its outcome. A job whose
// ctx ends while it is still queued is withdrawn and fails as a
// transaction would (Unavailable); once its batch has started, it waits
// for the batch's outcome, which is then its own.
func (s *Store) chained(ctx context.Context, env string, job *chainJob) {
	if err := ctx.Err(); err != nil {
		job.err = dbError("begin", err)
		return
	}
	job.done = make(chan struct{})
	s.chainMu.Lock()
	if s.chains == nil {
		s.chains = map[string]*chainQueue{}
	}
	q := s.chains[env]
	if q == nil {
		q = &chainQueue{}
		s.chains[env] = q
	}
	s.chainMu.Unlock()

	q.mu.Lock()
	q.pending = append(q.pending, job)
	start := q.running < chainLanes
	if start {
		q.running++
	}
	q.mu.Unlock()
	if start {
		go s.drainChain(env, q)
	}
	select {
	case <-job.done:
		return
	case <-ctx.Done():
	}
	q.mu.Lock()
	for i, j := range q.pending {
		if j == job {
			q.pending = append(q.pending[:i:i], q.pending[i+1:]...)
			q.mu.Unlock()
			job.err = dbError("begin", ctx.Err())
			return
		}
	}
	q.mu.Unlock()
	<-job.done
}

// drainChain commits q's jobs, a batch at a time, until q is empty.
func (s *Store) drainChain(env string, q *chainQueue) {
	for {
		q.mu.Lock()
		batch := takeBatch(q)
		if len(batch) == 0 {
			q.running--
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		s.commitChain(env, batch)
	}
}

// takeBatch removes up to maxChainBatch jobs from q, oldest first. A job
// for a name@version already in the batch stays queued for the next one,
// so that one transaction never inserts the same version twice.
func takeBatch(q *chainQueue) []*chainJob {
	var (
		batch    []*chainJob
		rest     []*chainJob
		versions = map[string]bool{}
	)
	for _, j := range q.pending {
		if len(batch) == maxChainBatch {
			rest = append(rest, j)
			continue
		}
		if j.rec != nil {
			key := j.rec.Name + "@" + j.rec.Version
			if versions[key] {
				rest = append(rest, j)
				continue
			}
			versions[key] = true
		}
		batch = append(batch, j)
	}
	q.pending = rest
	return batch
}

// commitChain commits batch in one transaction, or, when that fails, each
// job in a transaction of its own; then answers every job.
func (s *Store) commitChain(env string, batch []*chainJob) {
	ctx, cancel := context.WithTimeout(context.Background(), chainTimeout)
	defer cancel()
	defer func() {
		for _, j := range batch {
			close(j.done)
		}
	}()
	err := s.inTx(ctx, func(tx *sql.Tx) error { return s.chainTx(ctx, tx, env, batch) })
	if err == nil || len(batch) == 1 {
		if err != nil {
			batch[0].err = err
		}
		return
	}
	for _, j := range batch {
		one := []*chainJob{j}
		if err := s.inTx(ctx, func(tx *sql.Tx) error { return s.chainTx(ctx, tx, env, one) }); err != nil {
			j.err = err
		}
	}
}

// chainTx writes jobs in tx: the version rows and signatures first, then,
// under env's audit lock, each event linked after the one before. A job
// refused with an Exists error (its version exists with other content)
// gets that error and writes nothing; any other error fails tx. One job
// runs the statements CommitVersion and AppendAudit always ran; several
// share multi-row statements, so that a batch costs a handful of round
// trips whatever its size.
func (s *Store) chainTx(ctx context.Context, tx *sql.Tx, env string, jobs []*chainJob) error {
	for _, j := range jobs {
		j.out, j.created, j.id, j.err = registry.VersionRecord{}, false, 0, nil
	}
	var err error
	if len(jobs) == 1 {
		err = oneVersion(ctx, tx, env, jobs[0])
	} else {
		err = batchVersions(ctx, tx, env, jobs)
	}
	if err != nil {
		return err
	}
	live := make([]*chainJob, 0, len(jobs))
	for _, j := range jobs {
		if j.err == nil {
			live = append(live, j)
		}
	}
	if len(live) == 0 {
		return nil
	}
	head, err := s.lockedHead(ctx, tx, env)
	if err != nil {
		return err
	}
	if len(live) == 1 {
		live[0].id, _, err = s.insertLinked(ctx, tx, live[0].ev, head)
		return err
	}
	return s.insertLinkedBatch(ctx, tx, live, head)
}

// oneVersion commits j's version, if it has one, with its signatures.
func oneVersion(ctx context.Context, tx *sql.Tx, env string, j *chainJob) error {
	if j.rec == nil {
		return nil
	}
	out, created, err := commitVersionTx(ctx, tx, env, *j.rec)
	if registry.KindOf(err) == registry.Exists {
		// No statement failed (the insert did nothing): the transaction
		// goes on without this job.
		j.err = err
		return nil
	}
	if err != nil {
		return err
	}
	// Signatures are about the manifest digest, which both outcomes
	// share; a retry adds what a crashed attempt did not.
	if err := insertSignatures(ctx, tx, env, out.ManifestDigest, j.rec.Signatures); err != nil {
		return err
	}
	if out.Signatures, err = listSignatures(ctx, tx, env, out.ManifestDigest); err != nil {
		return err
	}
	j.out, j.created = out, created
	return nil
}

// batchVersions is oneVersion for several jobs at once: one INSERT of every
// version row, a look at the rows that were there already, one INSERT of
// every signature and one query reading them back. takeBatch keeps a
// name@version to one job per batch.
func batchVersions(ctx context.Context, tx *sql.Tx, env string, jobs []*chainJob) error {
	var (
		vjobs []*chainJob
		recs  []registry.VersionRecord
		vals  []string
		args  []any
	)
	for _, j := range jobs {
		if j.rec == nil {
			continue
		}
		rec, row, err := versionRow(env, *j.rec)
		if err != nil {
			return err
		}
		vals = append(vals, placeholders(len(args), len(row)))
		args = append(args, row...)
		vjobs, recs = append(vjobs, j), append(recs, rec)
	}
	if len(vjobs) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO versions (`+versionColumns+`) VALUES `+strings.Join(vals, ", ")+`
		ON CONFLICT (environment, name, version) DO NOTHING RETURNING name, version`, args...)
	if err != nil {
		return dbError("insert versions", err)
	}
	inserted, err := collect(rows, "insert versions", func(sc scanner) (string, error) {
		var name, version string
		err := sc.Scan(&name, &version)
		return name + "@" + version, err
	})
	if err != nil {
		return err
	}
	created := make(map[string]bool, len(inserted))
	for _, k := range inserted {
		created[k] = true
	}

	var (
		sigVals []string
		sigArgs []any
		digests []any
		live    []*chainJob
	)
	for i, j := range vjobs {
		rec := recs[i]
		if created[rec.Name+"@"+rec.Version] {
			j.out, j.created = rec, true
		} else {
			out, _, err := existingVersion(ctx, tx, env, rec)
			if registry.KindOf(err) == registry.Exists {
				j.err = err
				continue
			}
			if err != nil {
				return err
			}
			j.out = out
		}
		for _, sig := range j.rec.Signatures {
			sigVals = append(sigVals, placeholders(len(sigArgs), 8))
			sigArgs = append(sigArgs, env, j.out.ManifestDigest.String(), string(sig.Role), sig.KeyID, sig.Subject,
				sig.Signature, sig.Trusted, formatTime(normTime(sig.CreatedAt)))
		}
		digests = append(digests, j.out.ManifestDigest.String())
		live = append(live, j)
	}
	if len(live) == 0 {
		return nil
	}
	if len(sigVals) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO signatures
			(environment, manifest_digest, role, key_id, subject, signature, trusted, created_at)
			VALUES `+strings.Join(sigVals, ", ")+`
			ON CONFLICT (environment, manifest_digest, role, key_id, subject) DO NOTHING`, sigArgs...); err != nil {
			return dbError("insert signatures", err)
		}
	}
	in := make([]string, len(digests))
	for i := range digests {
		in[i] = "$" + strconv.Itoa(i+2)
	}
	rows, err = tx.QueryContext(ctx, `SELECT manifest_digest, role, key_id, subject, signature, trusted, created_at
		FROM signatures WHERE environment = $1 AND manifest_digest IN (`+strings.Join(in, ", ")+`) ORDER BY id`,
		append([]any{env}, digests...)...)
	if err != nil {
		return dbError("list signatures", err)
	}
	type digestSig struct {
		digest string
		sig    registry.Signature
	}
	sigs, err := collect(rows, "list signatures", func(sc scanner) (digestSig, error) {
		var ds digestSig
		var err error
		ds.sig, err = scanSignature(prefixScanner{sc: sc, first: &ds.digest})
		return ds, err
	})
	if err != nil {
		return err
	}
	byDigest := make(map[string][]registry.Signature, len(live))
	for _, ds := range sigs {
		byDigest[ds.digest] = append(byDigest[ds.digest], ds.sig)
	}
	for _, j := range live {
		// nil when there are none, as listSignatures answers.
		j.out.Signatures = byDigest[j.out.ManifestDigest.String()]
	}
	return nil
}

// insertLinkedBatch appends the events of jobs, in order, after head (the
// current head under the lock) with one INSERT, and sets each job's id.
// The ids must grow with the chain, as one INSERT per event would leave
// them; both databases number the rows of a VALUES list in order, and
// anything else fails the batch rather than store a chain whose id order
// differs from its seq order.
func (s *Store) insertLinkedBatch(ctx context.Context, tx *sql.Tx, jobs []*chainJob, head audit.Head) error {
	vals := make([]string, 0, len(jobs))
	var args []any
	first := head.Seq + 1
	for _, j := range jobs {
		ev, row, err := s.auditRow(j.ev, head)
		if err != nil {
			return err
		}
		head = audit.Head{Seq: ev.Seq, Hash: ev.Hash}
		vals = append(vals, placeholders(len(args), len(row)))
		args = append(args, row...)
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO audit_events (`+auditInsertColumns+`) VALUES `+
		strings.Join(vals, ", ")+` RETURNING id, seq`, args...)
	if err != nil {
		return dbError("append audit", err)
	}
	type idSeq struct{ id, seq int64 }
	got, err := collect(rows, "append audit", func(sc scanner) (idSeq, error) {
		var r idSeq
		return r, sc.Scan(&r.id, &r.seq)
	})
	if err != nil {
		return err
	}
	if len(got) != len(jobs) {
		return internalf("append audit: %d events inserted, %d returned", len(jobs), len(got))
	}
	ids := make([]int64, len(jobs))
	for _, r := range got {
		i := r.seq - first
		if i < 0 || i >= int64(len(jobs)) || ids[i] != 0 {
			return internalf("append audit: unexpected seq %d returned", r.seq)
		}
		ids[i] = r.id
	}
	for i, j := range jobs {
		if i > 0 && ids[i] <= ids[i-1] {
			return internalf("append audit: ids do not grow with seq in a batch")
		}
		j.id = ids[i]
	}
	return nil
}

// placeholders returns "($n+1, …, $n+count)".
func placeholders(n, count int) string {
	var b strings.Builder
	b.WriteByte('(')
	for i := 1; i <= count; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n + i))
	}
	b.WriteByte(')')
	return b.String()
}

// prefixScanner scans a row's first column into first and the rest with
// the caller's destinations, so that a scan function written for a query
// can read the same columns behind one more.
type prefixScanner struct {
	sc    scanner
	first any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.sc.Scan(append([]any{p.first}, dest...)...)
}
