// Reading the small text files auth keeps (password file, ACL file).
#pragma once

#include <string>
#include <vector>

namespace hato::auth {

// Reads all of `path` into `out`. On failure appends "path: cannot open: why"
// to `errors` and returns false.
bool read_text_file(const std::string& path, std::string& out, std::vector<std::string>& errors);

}  // namespace hato::auth
