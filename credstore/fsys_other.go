//go:build !unix

package credstore

import "io/fs"

// oNoFollow is 0 where the open flag does not exist; the Lstat checks before opening still refuse a link.
const oNoFollow = 0

// checkPerms is false on Windows: the directory's ACL protects the store there, not mode bits.
const checkPerms = false

func ownerOf(fs.FileInfo) int  { return -1 }
func userName(uid int) string  { return "another user" }
func loginName(uid int) string { return "" }
func euid() int                { return -1 }
