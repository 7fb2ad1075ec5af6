// DIR/quarantine/: where recovery puts what it will not use, before it
// changes anything on disk: a copy of a damaged segment (the original is
// then repaired in place), or a file named like a segment that is not one
// (moved there, never modified). Names are the file's name plus the UTC time,
// e.g. 0000000000000001.seg.20261202T010203Z (a counter is added if taken).
#pragma once

#include <string>

namespace hato::store {

// Copies the file open as `fd` (named `path`) into DIR/quarantine/ and makes
// the copy durable (file and directory). Runs of zeros stay holes, so a
// mostly preallocated segment costs little space. Sets `copy` to its path.
// On failure errno holds the failing call's error (ENOSPC: no room).
bool quarantine_copy(const std::string& dir, const std::string& path, int fd, std::string& copy,
                     std::string& err);

// Renames `path` (inside `dir`) into DIR/quarantine/, durably.
bool quarantine_move(const std::string& dir, const std::string& path, std::string& moved, std::string& err);

}  // namespace hato::store
