//go:build !unix

package ipam

import "errors"

func lockFile(string) (func(), error) {
	return nil, errors.New("ipam: file locking needs a unix system")
}
