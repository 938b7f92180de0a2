// libFuzzer target for ChunkReader: the input (after one byte that picks a split point) is fed once
// whole and once in two reads, the way a connection resumes after a short read; both must give the
// same messages and the same error. AMF0 command and data bodies are decoded as the session would.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "sf/rtmp/amf0.h"
#include "sf/rtmp/chunk.h"

namespace {

using sf::ByteView;
using sf::rtmp::ChunkLimits;
using sf::rtmp::ChunkReader;
using sf::rtmp::Message;

// Small limits so the fuzzer reaches them with short inputs.
constexpr ChunkLimits kLimits{
    .max_message_size = 64 * 1024,
    .max_chunk_size = 64 * 1024,
    .max_chunk_streams = 8,
    .max_pending_bytes = 128 * 1024,
};

struct Outcome {
  std::vector<Message> messages;
  std::error_code error;
  std::size_t consumed = 0;
};

Outcome feed_whole(ByteView in) {
  ChunkReader reader(kLimits);
  Outcome o;
  auto used = reader.feed(in, o.messages);
  if (used) {
    o.consumed = *used;
  } else {
    o.error = used.error();
  }
  return o;
}

Outcome feed_split(ByteView in, std::size_t split) {
  ChunkReader reader(kLimits);
  Outcome o;
  auto first = reader.feed(in.first(split), o.messages);
  if (!first) {
    o.error = first.error();
    return o;
  }
  if (*first > split) std::abort();
  // The caller keeps the unconsumed tail of the first read and appends the second read to it.
  auto second = reader.feed(in.subspan(*first), o.messages);
  if (!second) {
    o.error = second.error();
    return o;
  }
  o.consumed = *first + *second;
  return o;
}

bool same_message(const Message& a, const Message& b) {
  return a.type == b.type && a.stream_id == b.stream_id && a.csid == b.csid && a.timestamp == b.timestamp &&
         a.body.size() == b.body.size() &&
         (a.body.empty() || std::memcmp(a.body.data(), b.body.data(), a.body.size()) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const ByteView in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  const std::size_t split = in.size() * data[0] / 255;

  const Outcome whole = feed_whole(in);
  const Outcome split_outcome = feed_split(in, split);
  if (whole.consumed > in.size()) std::abort();
  if (whole.error != split_outcome.error || whole.consumed != split_outcome.consumed) std::abort();
  if (whole.messages.size() != split_outcome.messages.size()) std::abort();
  for (std::size_t i = 0; i < whole.messages.size(); ++i) {
    if (!same_message(whole.messages[i], split_outcome.messages[i])) std::abort();
  }

  for (const Message& m : whole.messages) {
    ByteView body = m.body.view();
    if (m.type == sf::rtmp::kAmf3Command && !body.empty()) body = body.subspan(1);  // SPECS 3.6
    if (m.type == sf::rtmp::kAmf0Command || m.type == sf::rtmp::kAmf0Data || m.type == sf::rtmp::kAmf3Command) {
      (void)sf::rtmp::amf0::decode(body);
    }
  }
  return 0;
}
