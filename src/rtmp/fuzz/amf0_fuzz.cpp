// libFuzzer target for the AMF0 decoder: whatever decodes must encode and decode back to the same
// values (numbers bit for bit), and nothing may read outside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "amf0_compare.h"
#include "sf/rtmp/amf0.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace amf0 = sf::rtmp::amf0;
  const sf::ByteView in(reinterpret_cast<const std::byte*>(data), size);
  auto values = amf0::decode(in);
  if (!values) return 0;

  std::vector<std::byte> out;
  for (const auto& v : *values) amf0::encode(v, out);
  auto again = amf0::decode(out);
  if (!again || again->size() != values->size()) std::abort();
  for (std::size_t i = 0; i < values->size(); ++i) {
    if (!amf0::same_value((*values)[i], (*again)[i])) std::abort();
  }
  return 0;
}
