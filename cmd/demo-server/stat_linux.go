package main

import (
	"fmt"
	"os"
	"syscall"
)

// statFile prints "uid=U gid=G mode=0MMM" of a file.
func statFile(p string) int {
	st, err := os.Stat(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sys := st.Sys().(*syscall.Stat_t)
	fmt.Printf("uid=%d gid=%d mode=%04o\n", sys.Uid, sys.Gid, st.Mode().Perm())
	return 0
}
