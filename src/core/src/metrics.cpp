#include "sf/core/metrics.h"

#include <prometheus/text_serializer.h>

namespace sf {

std::string Metrics::serialize() const {
  prometheus::TextSerializer serializer;
  auto families = registry_->Collect();
  for (auto& weak : collectables_) {
    if (auto c = weak.lock()) {
      auto more = c->Collect();
      families.insert(families.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
  }
  return serializer.Serialize(families);
}

}  // namespace sf
