//go:build !linux

package main

import (
	"fmt"
	"os"
)

func statFile(p string) int {
	st, err := os.Stat(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("mode=%04o\n", st.Mode().Perm())
	return 0
}
