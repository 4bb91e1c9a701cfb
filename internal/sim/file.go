package sim

import "os"

// createFile is os.Create, kept apart so the rest of the package stays
// free of file-system calls.
func createFile(name string) (*os.File, error) { return os.Create(name) }
