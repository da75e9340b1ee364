//go:build !linux

package filesystem

import (
	"errors"
	"os"
)

func openAnonymous(string) (*os.File, error) { return nil, errors.ErrUnsupported }

func linkAnonymous(*os.File, string) error { return errors.ErrUnsupported }
