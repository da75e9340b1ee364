// Package config is stagegate's typed configuration: a YAML file decoded
// strictly, STAGEGATE_* environment overrides on top, then Validate.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole service configuration.
type Config struct {
	// Addr is the listen address.
	Addr string `yaml:"addr"`
	// DataDir holds the embedded default's blobs, database and keys.
	DataDir string `yaml:"data_dir"`
	// Environments in promotion order; the first accepts publishes.
	Environments []Environment `yaml:"environments"`
	Storage      Storage       `yaml:"storage"`
	Database     Database      `yaml:"database"`
	Limits       Limits        `yaml:"limits"`
	Server       Server        `yaml:"server"`
	// Auth configures credentials other than API keys (OIDC trusted
	// publishing).
	Auth Auth `yaml:"auth"`
}

// Environment configures one environment.
type Environment struct {
	Name string `yaml:"name"`
	// Bucket overrides the MinIO bucket (default: storage.minio.bucket_prefix + name).
	Bucket string `yaml:"bucket"`
	// MinIO overrides the MinIO credentials for this environment's bucket.
	MinIO *MinIOCredentials `yaml:"minio"`
	// Signing configures the environment's cosign key and trusted CI keys.
	Signing Signing `yaml:"signing"`
	// Policy is the gate policy file for promotions into this environment.
	// Empty: the embedded default for staging and prod; for other names a
	// minimal policy (promotion order and digest integrity).
	Policy string `yaml:"policy"`
	// Hooks configures the webhooks the environment accepts (Alertmanager).
	Hooks Hooks `yaml:"hooks"`
	// Retention makes the environment's MinIO bucket WORM (retention.go).
	Retention *Retention `yaml:"retention"`
}

// DefaultPasswordEnv names the variable holding key passwords when an
// environment names none.
const DefaultPasswordEnv = "STAGEGATE_KEY_PASSWORD"

// Signing is one environment's keys, all in cosign's formats.
type Signing struct {
	// Key is the encrypted cosign private key that signs (the newest key).
	// Empty: the embedded default, <data_dir>/keys/<env>.key, generated on
	// first start.
	Key string `yaml:"key"`
	// PasswordEnv names the variable holding Key's password (default
	// STAGEGATE_KEY_PASSWORD).
	PasswordEnv string `yaml:"password_env"`
	// VerificationKeys are older public keys whose signatures still count
	// (rotation).
	VerificationKeys []string `yaml:"verification_keys"`
	// TrustedCIKeys are public keys whose signatures on a publish make it
	// "trusted" for the gate engine.
	TrustedCIKeys []string `yaml:"trusted_ci_keys"`
	// Password is resolved from PasswordEnv by ApplyEnv; never read from YAML.
	Password string `yaml:"-"`
}

// MinIOCredentials are an access key pair.
type MinIOCredentials struct {
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
}

// Storage selects the blob driver.
type Storage struct {
	// Driver is "filesystem" (embedded default, under data_dir/blobs) or "minio".
	Driver string `yaml:"driver"`
	MinIO  MinIO  `yaml:"minio"`
}

// MinIO is the MinIO (S3) endpoint.
type MinIO struct {
	Endpoint     string `yaml:"endpoint"`
	AccessKey    string `yaml:"access_key"`
	SecretKey    string `yaml:"secret_key"`
	Secure       bool   `yaml:"secure"`
	Region       string `yaml:"region"`
	BucketPrefix string `yaml:"bucket_prefix"`
}

// Database selects the metadata store.
type Database struct {
	// Driver is "sqlite" (embedded default, data_dir/stagegate.db) or "postgres".
	Driver string `yaml:"driver"`
	// DSN is the PostgreSQL URL, or the SQLite file path.
	DSN string `yaml:"dsn"`
}

// Limits bound uploads, and what one credential may ask of a replica.
type Limits struct {
	MaxFileSize Size `yaml:"max_file_size"`
	MaxFiles    int  `yaml:"max_files"`
	// Requests is each credential's request budget, by role.
	Requests RoleRates `yaml:"requests"`
	// UploadsPerKey caps one credential's blob uploads in flight on a
	// replica; 0 means no cap.
	UploadsPerKey int `yaml:"uploads_per_key"`
}

// Rate is a token bucket: Burst requests at once, refilled at PerSecond.
// PerSecond 0 means no limit.
type Rate struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// RoleRates is a token bucket per role; a role left out uses Default.
// Fields rather than a map, so that strict decoding refuses a role that
// does not exist.
type RoleRates struct {
	Default   Rate  `yaml:"default"`
	Reader    *Rate `yaml:"reader"`
	Publisher *Rate `yaml:"publisher"`
	Promoter  *Rate `yaml:"promoter"`
	Approver  *Rate `yaml:"approver"`
	Admin     *Rate `yaml:"admin"`
}

// For returns the bucket of role (a role name as auth spells it).
func (r RoleRates) For(role string) Rate {
	if p := r.byRole()[role]; p != nil {
		return *p
	}
	return r.Default
}

// byRole maps each role, and "default", to its bucket (nil: not set).
func (r *RoleRates) byRole() map[string]*Rate {
	return map[string]*Rate{"default": &r.Default, "reader": r.Reader, "publisher": r.Publisher, "promoter": r.Promoter,
		"approver": r.Approver, "admin": r.Admin}
}

// Server bounds how long a client may hold a connection without making
// progress. There is deliberately no limit on a whole request or response:
// model files of many GiB take as long as they take, so only stalls and
// slowness are cut.
type Server struct {
	// IdleTimeout closes a keep-alive connection with no request in flight.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ReadHeaderTimeout bounds reading one request's headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// WriteTimeout is how long one write of a response may wait for the
	// client to accept bytes; it is renewed on every write.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MinUploadRate is the slowest request body accepted, in bytes per
	// second averaged over UploadRateWindow; 0 disables the rule.
	MinUploadRate Size `yaml:"min_upload_rate"`
	// UploadRateWindow is the span MinUploadRate is averaged over, and the
	// longest a body may send nothing at all.
	UploadRateWindow time.Duration `yaml:"upload_rate_window"`
	// ShutdownTimeout is how long serve waits, after SIGTERM or SIGINT,
	// for requests in flight (uploads included) to finish; new connections
	// are refused at once. Past it, remaining connections are cut and serve
	// exits non-zero.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MetricsAddr, when set, serves /metrics on its own listener instead of
	// the main one (which then answers 404 there), e.g. to keep it off a
	// public port.
	MetricsAddr string `yaml:"metrics_addr"`
}

// Size is a byte count that YAML and environment variables may write as
// "10GiB", "512MiB", "100MB" or a plain number.
type Size int64

// UnmarshalYAML accepts a number or a size string.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}

var sizePattern = regexp.MustCompile(`^\s*(\d+)\s*([KMGT]i?B|B)?\s*$`)

// ParseSize parses "10GiB"-style sizes.
func ParseSize(s string) (Size, error) {
	m := sizePattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid size %q (want e.g. 500MiB, 10GiB or a byte count)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[2]]
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(n * mult), nil
}

// Default is the embedded default: filesystem blobs and SQLite under
// ./stagegate-data, environments dev → staging → prod, on 127.0.0.1:8080.
func Default() Config {
	return Config{
		Addr:         "127.0.0.1:8080",
		DataDir:      "./stagegate-data",
		Environments: []Environment{{Name: "dev"}, {Name: "staging"}, {Name: "prod"}},
		Storage:      Storage{Driver: "filesystem", MinIO: MinIO{BucketPrefix: "stagegate-"}},
		Database:     Database{Driver: "sqlite"},
		Limits: Limits{MaxFileSize: 50 << 30, MaxFiles: 10000,
			// Far above what a CI job sends: a push of N files is 2N+1
			// requests, and the client waits out a 429's Retry-After.
			Requests:      RoleRates{Default: Rate{PerSecond: 200, Burst: 2000}},
			UploadsPerKey: 16},
		Server: Server{
			IdleTimeout:       120 * time.Second,
			ReadHeaderTimeout: 30 * time.Second,
			WriteTimeout:      60 * time.Second,
			MinUploadRate:     64 << 10,
			UploadRateWindow:  30 * time.Second,
			ShutdownTimeout:   30 * time.Second,
		},
	}
}

// Parse decodes YAML over the defaults, refusing unknown keys.
func Parse(r io.Reader) (Config, error) {
	cfg := Default()
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Load reads the file at path (when not empty) and applies env overrides.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		if cfg, err = Parse(f); err != nil {
			return Config{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := cfg.ApplyEnv(getenv); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// ApplyEnv overrides fields from STAGEGATE_* variables (see README).
func (c *Config) ApplyEnv(getenv func(string) string) error {
	str := map[string]*string{
		"STAGEGATE_ADDR":                &c.Addr,
		"STAGEGATE_DATA_DIR":            &c.DataDir,
		"STAGEGATE_STORAGE_DRIVER":      &c.Storage.Driver,
		"STAGEGATE_MINIO_ENDPOINT":      &c.Storage.MinIO.Endpoint,
		"STAGEGATE_MINIO_ACCESS_KEY":    &c.Storage.MinIO.AccessKey,
		"STAGEGATE_MINIO_SECRET_KEY":    &c.Storage.MinIO.SecretKey,
		"STAGEGATE_MINIO_REGION":        &c.Storage.MinIO.Region,
		"STAGEGATE_MINIO_BUCKET_PREFIX": &c.Storage.MinIO.BucketPrefix,
		"STAGEGATE_DATABASE_DRIVER":     &c.Database.Driver,
		"STAGEGATE_DATABASE_DSN":        &c.Database.DSN,
		"STAGEGATE_METRICS_ADDR":        &c.Server.MetricsAddr,
	}
	for k, p := range str {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	if v := getenv("STAGEGATE_MINIO_SECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("STAGEGATE_MINIO_SECURE: %w", err)
		}
		c.Storage.MinIO.Secure = b
	}
	if v := getenv("STAGEGATE_ENVIRONMENTS"); v != "" {
		c.Environments = nil
		for _, name := range strings.Split(v, ",") {
			c.Environments = append(c.Environments, Environment{Name: strings.TrimSpace(name)})
		}
	}
	if v := getenv("STAGEGATE_MAX_FILE_SIZE"); v != "" {
		s, err := ParseSize(v)
		if err != nil {
			return fmt.Errorf("STAGEGATE_MAX_FILE_SIZE: %w", err)
		}
		c.Limits.MaxFileSize = s
	}
	c.resolveHooks(getenv)
	for i := range c.Environments {
		sg := &c.Environments[i].Signing
		name := sg.PasswordEnv
		if name == "" {
			name = DefaultPasswordEnv
		}
		sg.Password = getenv(name)
	}
	if v := getenv("STAGEGATE_MAX_FILES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("STAGEGATE_MAX_FILES: %w", err)
		}
		c.Limits.MaxFiles = n
	}
	if v := getenv("STAGEGATE_UPLOADS_PER_KEY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("STAGEGATE_UPLOADS_PER_KEY: %w", err)
		}
		c.Limits.UploadsPerKey = n
	}
	if v := getenv("STAGEGATE_REQUESTS_PER_SECOND"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("STAGEGATE_REQUESTS_PER_SECOND: %w", err)
		}
		c.Limits.Requests.Default.PerSecond = f
	}
	if v := getenv("STAGEGATE_REQUESTS_BURST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("STAGEGATE_REQUESTS_BURST: %w", err)
		}
		c.Limits.Requests.Default.Burst = n
	}
	if v := getenv("STAGEGATE_MIN_UPLOAD_RATE"); v != "" {
		s, err := ParseSize(v)
		if err != nil {
			return fmt.Errorf("STAGEGATE_MIN_UPLOAD_RATE: %w", err)
		}
		c.Server.MinUploadRate = s
	}
	// A slice, not a map, so that of several bad values the same one is
	// always reported.
	durations := []struct {
		name string
		p    *time.Duration
	}{
		{"STAGEGATE_IDLE_TIMEOUT", &c.Server.IdleTimeout},
		{"STAGEGATE_READ_HEADER_TIMEOUT", &c.Server.ReadHeaderTimeout},
		{"STAGEGATE_WRITE_TIMEOUT", &c.Server.WriteTimeout},
		{"STAGEGATE_UPLOAD_RATE_WINDOW", &c.Server.UploadRateWindow},
		{"STAGEGATE_SHUTDOWN_TIMEOUT", &c.Server.ShutdownTimeout},
	}
	for _, d := range durations {
		if v := getenv(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %w", d.name, err)
			}
			*d.p = dur
		}
	}
	return nil
}

var envName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// Validate reports every problem at once, so start-up fails with the whole list.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("addr is empty"))
	}
	if len(c.Environments) == 0 {
		errs = append(errs, errors.New("at least one environment is required"))
	}
	seen := map[string]bool{}
	for _, e := range c.Environments {
		if !envName.MatchString(e.Name) {
			errs = append(errs, fmt.Errorf("environment name %q: want lowercase letters, digits and '-', starting with a letter", e.Name))
		}
		if seen[e.Name] {
			errs = append(errs, fmt.Errorf("environment %q is listed twice", e.Name))
		}
		seen[e.Name] = true
	}
	switch c.Storage.Driver {
	case "filesystem":
		if c.DataDir == "" {
			errs = append(errs, errors.New("data_dir is required by the filesystem storage driver"))
		}
	case "minio":
		if c.Storage.MinIO.Endpoint == "" {
			errs = append(errs, errors.New("storage.minio.endpoint is required by the minio driver"))
		}
		buckets := map[string]string{}
		for _, e := range c.Environments {
			b := c.BucketFor(e)
			if other, dup := buckets[b]; dup {
				errs = append(errs, fmt.Errorf("environments %q and %q share bucket %q; each environment needs its own", other, e.Name, b))
			}
			buckets[b] = e.Name
		}
	default:
		errs = append(errs, fmt.Errorf("storage.driver %q: want filesystem or minio", c.Storage.Driver))
	}
	errs = append(errs, c.validateRetention()...)
	switch c.Database.Driver {
	case "sqlite":
		if c.Database.DSN == "" && c.DataDir == "" {
			errs = append(errs, errors.New("database.dsn or data_dir is required by the sqlite driver"))
		}
	case "postgres":
		if c.Database.DSN == "" {
			errs = append(errs, errors.New("database.dsn is required by the postgres driver"))
		}
	default:
		errs = append(errs, fmt.Errorf("database.driver %q: want sqlite or postgres", c.Database.Driver))
	}
	if c.Limits.MaxFileSize <= 0 {
		errs = append(errs, errors.New("limits.max_file_size must be positive"))
	}
	if c.Limits.MaxFiles <= 0 {
		errs = append(errs, errors.New("limits.max_files must be positive"))
	}
	if c.Limits.UploadsPerKey < 0 {
		errs = append(errs, errors.New("limits.uploads_per_key must not be negative (0 turns the cap off)"))
	}
	for _, key := range []string{"default", "reader", "publisher", "promoter", "approver", "admin"} {
		r := c.Limits.Requests.byRole()[key]
		switch {
		case r == nil:
		case r.PerSecond < 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0):
			errs = append(errs, fmt.Errorf("limits.requests.%s.per_second must be a finite number, at least 0 (0 turns the limit off)", key))
		case r.PerSecond > 0 && r.Burst < 1:
			errs = append(errs, fmt.Errorf("limits.requests.%s.burst must be at least 1 when per_second is set", key))
		}
	}
	// Zero would mean "no limit" to net/http, which is exactly the hold-open
	// these settings exist to prevent; turning them off is not offered.
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"server.idle_timeout", c.Server.IdleTimeout},
		{"server.read_header_timeout", c.Server.ReadHeaderTimeout},
		{"server.write_timeout", c.Server.WriteTimeout},
		{"server.upload_rate_window", c.Server.UploadRateWindow},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be a positive duration such as 30s, not %s", d.key, d.v))
		}
	}
	if c.Server.MinUploadRate < 0 {
		errs = append(errs, errors.New("server.min_upload_rate must not be negative (0 disables the minimum)"))
	}
	// Two listeners on one port cannot both bind (":0" picks two free ports).
	if c.Server.MetricsAddr != "" && c.Server.MetricsAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
		errs = append(errs, fmt.Errorf("server.metrics_addr %q is the main listen address; leave it empty to serve /metrics there", c.Server.MetricsAddr))
	}
	errs = append(errs, c.validateAuth()...)
	errs = append(errs, c.validateHooks()...)
	return errors.Join(errs...)
}

// BucketFor is the bucket of environment e.
func (c *Config) BucketFor(e Environment) string {
	if e.Bucket != "" {
		return e.Bucket
	}
	return c.Storage.MinIO.BucketPrefix + e.Name
}

// SQLitePath is the SQLite database file.
func (c *Config) SQLitePath() string {
	if c.Database.DSN != "" {
		return c.Database.DSN
	}
	return filepath.Join(c.DataDir, "stagegate.db")
}

// KeyDir holds the embedded default's generated signing keys.
func (c *Config) KeyDir() string { return filepath.Join(c.DataDir, "keys") }

// BlobDir is the filesystem driver's root for environment env.
func (c *Config) BlobDir(env string) string { return filepath.Join(c.DataDir, "blobs", env) }

// EnvironmentNames lists the configured environment names in promotion order.
func (c *Config) EnvironmentNames() []string {
	names := make([]string, len(c.Environments))
	for i, e := range c.Environments {
		names[i] = e.Name
	}
	return names
}
