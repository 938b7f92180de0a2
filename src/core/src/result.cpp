#include "sf/core/result.h"

#include <string>

namespace sf {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "streamflex"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::ok:
        return "success";
      case errc::truncated:
        return "input ended before a complete element";
      case errc::malformed:
        return "malformed input";
      case errc::message_too_large:
        return "declared length exceeds the configured limit";
      case errc::limit_exceeded:
        return "a configured limit was exceeded";
      case errc::unsupported:
        return "not supported";
      case errc::unauthorized:
        return "not authorized";
      case errc::conflict:
        return "resource already in use";
      case errc::timeout:
        return "peer did not answer in time";
      case errc::closed:
        return "connection closed";
      case errc::not_found:
        return "not found";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::io_error:
        return "input/output error";
    }
    return "unknown error " + std::to_string(c);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

void check_failed(const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "SF_CHECK failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace sf
