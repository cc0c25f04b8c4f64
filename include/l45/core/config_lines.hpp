// Line-oriented configuration files: one record per line, `#` starts a comment, fields are
// separated by blanks (what the subscribers and firewall rules files of the example
// middleboxes are).
//
//   for (const ConfigLine& l : config_lines(text))
//     if (l.fields.size() != 2) return config_error("subs.txt", l.number, "expected 'A B'");
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "l45/core/result.hpp"

namespace l45 {

struct ConfigLine {
  size_t number;  // 1-based
  std::vector<std::string_view> fields;
};

// Every line that has fields once its comment is cut, in order; the views point into `text`.
std::vector<ConfigLine> config_lines(std::string_view text);
// Error::invalid("name:line: why").
Error config_error(std::string_view name, size_t line, std::string_view why);

}  // namespace l45
