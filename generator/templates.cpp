#include <string>
#include <utility>

#include "swajit/error.hpp"
#include "swajit/generator.hpp"

namespace swajit {
namespace embedded {
extern const std::pair<std::string_view, std::string_view> kTemplates[];
extern const int kTemplateCount;
}  // namespace embedded

std::string_view template_text(std::string_view name) {
  for (int i = 0; i < embedded::kTemplateCount; ++i)
    if (embedded::kTemplates[i].first == name) return embedded::kTemplates[i].second;
  throw Error(ErrorCode::kInvalidArgument, "no embedded template named '" + std::string(name) + "'");
}

}  // namespace swajit
