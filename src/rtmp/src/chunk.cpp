#include "sf/rtmp/chunk.h"

#include <algorithm>
#include <cstring>

namespace sf::rtmp {
namespace {

constexpr std::uint32_t kMaxTimestampField = 0xFFFFFF;  // RTMP 5.3.1.3: escape to the extended field
constexpr std::uint32_t kMaxLength = 0xFFFFFF;
constexpr std::uint32_t kMaxCsid = 65599;
// RTMP 5.3.1.2: message header sizes for fmt 0, 1, 2, 3.
constexpr std::size_t kMessageHeaderSize[4] = {11, 7, 3, 0};

std::uint32_t load_u24(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
}
std::uint32_t load_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
std::uint32_t load_u32_le(const std::uint8_t* p) {
  return (std::uint32_t{p[3]} << 24) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[1]} << 8) | p[0];
}

std::uint8_t* store_u24(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 16);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v);
  return p + 3;
}
std::uint8_t* store_u32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  return store_u24(p + 1, v);
}

std::size_t basic_header_size(std::uint32_t csid) {
  return csid < 64 ? 1 : csid < 320 ? 2 : 3;
}

// RTMP 5.3.1.1: csid 2-63 inline, 64-319 as one extra byte, up to 65599 as two (little-endian).
std::uint8_t* store_basic_header(std::uint8_t* p, std::uint8_t fmt, std::uint32_t csid) {
  const auto top = static_cast<std::uint8_t>(fmt << 6);
  if (csid < 64) {
    *p++ = static_cast<std::uint8_t>(top | csid);
  } else if (csid < 320) {
    *p++ = top;
    *p++ = static_cast<std::uint8_t>(csid - 64);
  } else {
    *p++ = top | 1;
    *p++ = static_cast<std::uint8_t>((csid - 64) & 0xFF);
    *p++ = static_cast<std::uint8_t>((csid - 64) >> 8);
  }
  return p;
}

}  // namespace

struct ChunkReader::StreamState {
  explicit StreamState(std::uint32_t id) : csid(id) {}

  std::uint32_t csid;
  // Fields of the last type 0-2 header (RTMP 5.3.1.2), inherited by the chunks that follow.
  bool has_header = false;
  bool extended = false;  // that header carried an extended timestamp
  std::uint8_t type = 0;
  std::uint32_t extended_value = 0;  // the 32-bit extended field it carried
  std::uint32_t timestamp = 0;       // absolute timestamp of the current or last message
  std::uint32_t delta = 0;           // added again by a type-3 chunk that starts a message
  std::uint32_t length = 0;
  std::uint32_t stream_id = 0;
  // The message being reassembled; `body` has exactly `length` bytes while in_progress.
  bool in_progress = false;
  std::uint32_t received = 0;
  MutableBytes body;
};

void ChunkReader::StreamStateDelete::operator()(StreamState* s) const noexcept {
  delete s;
}

ChunkReader::~ChunkReader() = default;

ChunkReader::ChunkReader(ChunkReader&& other) noexcept
    : limits_(other.limits_),
      chunk_size_(other.chunk_size_),
      pending_bytes_(other.pending_bytes_),
      error_(other.error_),
      low_streams_(other.low_streams_),
      streams_(std::move(other.streams_)) {
  other.streams_.clear();
  other.low_streams_.fill(nullptr);
  other.pending_bytes_ = 0;
}

ChunkReader::StreamState* ChunkReader::find_stream(std::uint32_t csid) const {
  if (csid < low_streams_.size()) return low_streams_[csid];
  for (const auto& s : streams_) {
    if (s->csid == csid) return s.get();
  }
  return nullptr;
}

Result<ChunkReader::StreamState*> ChunkReader::stream(std::uint32_t csid) {
  if (StreamState* s = find_stream(csid)) return s;
  if (streams_.size() >= limits_.max_chunk_streams) return fail(errc::limit_exceeded);
  streams_.push_back(std::unique_ptr<StreamState, StreamStateDelete>(new StreamState(csid)));
  StreamState* s = streams_.back().get();
  if (csid < low_streams_.size()) low_streams_[csid] = s;
  return s;
}

Result<std::size_t> ChunkReader::feed(ByteView in, std::vector<Message>& out) {
  if (error_) return std::unexpected(error_);
  const auto* p = reinterpret_cast<const std::uint8_t*>(in.data());
  std::size_t pos = 0;
  while (pos < in.size()) {
    auto used = read_chunk(p + pos, in.size() - pos, out);
    if (!used) {
      error_ = used.error();
      return std::unexpected(error_);
    }
    if (*used == 0) break;
    pos += *used;
  }
  return pos;
}

// Reads one chunk from p[0, n). Returns its size, or 0 when it is not complete yet; nothing is
// changed until the whole chunk is there, so the caller can retry from the same byte.
Result<std::size_t> ChunkReader::read_chunk(const std::uint8_t* p, std::size_t n, std::vector<Message>& out) {
  const std::uint8_t fmt = p[0] >> 6;
  std::uint32_t csid = p[0] & 0x3F;
  std::size_t i = 1;
  if (csid == 0) {
    if (n < 2) return 0;
    csid = 64 + std::uint32_t{p[1]};
    i = 2;
  } else if (csid == 1) {
    if (n < 3) return 0;
    csid = 64 + std::uint32_t{p[1]} + 256 * std::uint32_t{p[2]};
    i = 3;
  }
  const std::size_t header_size = kMessageHeaderSize[fmt];
  if (n < i + header_size) return 0;

  auto found = stream(csid);
  if (!found) return std::unexpected(found.error());
  StreamState& s = **found;
  // Type 2 and 3 inherit the length and type; type 1 on a fresh csid inherits only stream id 0 and
  // timestamp 0, which FFmpeg and nginx-rtmp accept, so do we.
  if (fmt >= 2 && !s.has_header) return fail(errc::malformed);
  // A new header in the middle of a message would leave the partial body without a meaning.
  if (fmt != 3 && s.in_progress) return fail(errc::malformed);

  const std::uint8_t* h = p + i;
  std::uint32_t ts_field = 0;
  std::uint32_t length = s.length;
  std::uint8_t type = s.type;
  std::uint32_t stream_id = s.stream_id;
  if (fmt <= 2) ts_field = load_u24(h);
  if (fmt <= 1) {
    length = load_u24(h + 3);
    type = h[6];
  }
  if (fmt == 0) stream_id = load_u32_le(h + 7);  // the only little-endian field in RTMP
  i += header_size;

  const bool extended = fmt <= 2 ? ts_field == kMaxTimestampField : s.extended;
  if (extended) {
    if (n < i + 4) return 0;
    const std::uint32_t value = load_u32(p + i);
    if (fmt <= 2) {
      ts_field = value;
      i += 4;
    } else if (value == s.extended_value) {
      // RTMP 5.3.1.3 repeats the field on type-3 chunks; some encoders omit it, so only bytes
      // equal to the stored value are taken as the repeat.
      i += 4;
    }
  }

  const bool starts = !s.in_progress;
  std::uint32_t timestamp = s.timestamp;
  std::uint32_t remaining = s.length - s.received;
  if (starts) {
    if (length > limits_.max_message_size) return fail(errc::message_too_large);
    remaining = length;
    // Wrapping uint32 arithmetic: timestamps roll over after 2^32 ms.
    if (fmt == 0) {
      timestamp = ts_field;
    } else if (fmt == 3) {
      timestamp += s.delta;
    } else {
      timestamp += ts_field;
    }
  }
  const std::uint32_t payload = std::min(chunk_size_, remaining);
  if (starts && payload < length && pending_bytes_ + length > limits_.max_pending_bytes) {
    return fail(errc::limit_exceeded);
  }
  if (n - i < payload) return 0;

  // The chunk is complete: commit.
  if (fmt <= 2) {
    s.has_header = true;
    s.extended = extended;
    if (extended) s.extended_value = ts_field;
    s.delta = ts_field;  // after type 0 this is its absolute timestamp (SPECS 3.2)
  }
  if (fmt <= 1) {
    s.length = length;
    s.type = type;
  }
  if (fmt == 0) s.stream_id = stream_id;
  const std::uint8_t* data = p + i;
  const std::size_t used = i + payload;

  Bytes body;
  if (starts) {
    s.timestamp = timestamp;
    if (payload < length) {
      s.body = MutableBytes(length);
      s.received = 0;
      s.in_progress = true;
      pending_bytes_ += length;
    } else if (length != 0) {
      MutableBytes whole(length);
      std::memcpy(whole.data(), data, length);
      body = Bytes::freeze(std::move(whole));
    }
  }
  if (s.in_progress) {
    std::memcpy(s.body.data() + s.received, data, payload);
    s.received += payload;
    if (s.received < s.length) return used;
    s.in_progress = false;
    s.received = 0;
    pending_bytes_ -= s.length;
    body = Bytes::freeze(std::move(s.body));
  }

  out.push_back(Message{s.type, s.stream_id, csid, s.timestamp, std::move(body)});
  if (s.type == kSetChunkSize || s.type == kAbort) {
    auto applied = apply_control(out.back());
    if (!applied) return std::unexpected(applied.error());
  }
  return used;
}

// RTMP 5.4.1 and 5.4.2 act on receipt, before the next chunk is read.
Result<void> ChunkReader::apply_control(const Message& m) {
  if (m.body.size() < 4) return fail(errc::malformed);
  const std::uint32_t value = load_u32(reinterpret_cast<const std::uint8_t*>(m.body.data()));
  if (m.type == kSetChunkSize) {
    if (value == 0 || (value & 0x80000000u) != 0) return fail(errc::malformed);
    if (value > limits_.max_chunk_size) return fail(errc::limit_exceeded);
    chunk_size_ = value;
    return {};
  }
  StreamState* s = find_stream(value);
  if (s != nullptr && s->in_progress) {
    pending_bytes_ -= s->length;
    s->body = MutableBytes();
    s->in_progress = false;
    s->received = 0;
  }
  return {};
}

void ChunkWriter::write(std::uint32_t csid, std::uint8_t type, std::uint32_t stream_id, std::uint32_t timestamp,
                        ByteView body, std::vector<std::byte>& out) const {
  SF_CHECK(csid >= 2 && csid <= kMaxCsid);
  SF_CHECK(body.size() <= kMaxLength);
  const bool extended = timestamp >= kMaxTimestampField;
  const std::size_t basic = basic_header_size(csid);
  const std::size_t ext = extended ? 4 : 0;
  const std::size_t chunks = body.empty() ? 1 : (body.size() + chunk_size_ - 1) / chunk_size_;
  const std::size_t start = out.size();
  out.resize(start + basic + 11 + ext + body.size() + (chunks - 1) * (basic + ext));

  auto* o = reinterpret_cast<std::uint8_t*>(out.data() + start);
  o = store_basic_header(o, 0, csid);
  o = store_u24(o, extended ? kMaxTimestampField : timestamp);
  o = store_u24(o, static_cast<std::uint32_t>(body.size()));
  *o++ = type;
  for (int b = 0; b < 4; ++b) *o++ = static_cast<std::uint8_t>(stream_id >> (8 * b));
  if (extended) o = store_u32(o, timestamp);

  const auto* src = reinterpret_cast<const std::uint8_t*>(body.data());
  std::size_t left = body.size();
  for (std::size_t c = 0; c < chunks; ++c) {
    if (c > 0) {
      // RTMP 5.3.1.3: type-3 chunks repeat the extended timestamp.
      o = store_basic_header(o, 3, csid);
      if (extended) o = store_u32(o, timestamp);
    }
    const std::size_t take = std::min<std::size_t>(left, chunk_size_);
    if (take != 0) std::memcpy(o, src, take);
    o += take;
    src += take;
    left -= take;
  }
  SF_ASSERT(o == reinterpret_cast<std::uint8_t*>(out.data() + out.size()));
}

void ChunkWriter::plan(std::uint32_t csid, std::uint8_t type, std::uint32_t stream_id, std::uint32_t timestamp,
                       ByteView prefix, ByteView payload, int source, ChunkPlan& plan) const {
  SF_CHECK(csid >= 2 && csid <= kMaxCsid);
  const std::size_t length = prefix.size() + payload.size();
  SF_CHECK(length <= kMaxLength);
  const bool extended = timestamp >= kMaxTimestampField;
  auto add_own = [&plan](std::size_t from) {
    if (plan.bytes.size() == from) return;
    // Adjacent spans of our own bytes merge into one piece.
    if (!plan.pieces.empty() && plan.pieces.back().source == -1 &&
        plan.pieces.back().offset + plan.pieces.back().size == from)
      plan.pieces.back().size += plan.bytes.size() - from;
    else
      plan.pieces.push_back({-1, from, plan.bytes.size() - from});
  };
  auto put_header = [&](int fmt) {
    const std::size_t from = plan.bytes.size();
    std::uint8_t h[3 + 11 + 4];
    auto* o = store_basic_header(h, fmt, csid);
    if (fmt == 0) {
      o = store_u24(o, extended ? kMaxTimestampField : timestamp);
      o = store_u24(o, static_cast<std::uint32_t>(length));
      *o++ = type;
      for (int b = 0; b < 4; ++b) *o++ = static_cast<std::uint8_t>(stream_id >> (8 * b));
    }
    // RTMP 5.3.1.3: type-3 chunks repeat the extended timestamp.
    if (extended) o = store_u32(o, timestamp);
    const auto* b = reinterpret_cast<const std::byte*>(h);
    plan.bytes.insert(plan.bytes.end(), b, b + (o - h));
    return from;
  };
  std::size_t from = put_header(0);
  std::size_t done = 0;
  std::size_t in_chunk = 0;
  while (done < length || done == 0) {
    if (in_chunk == chunk_size_) {
      add_own(from);
      from = put_header(3);
      in_chunk = 0;
    }
    if (done < prefix.size()) {
      const std::size_t take = std::min(prefix.size() - done, chunk_size_ - in_chunk);
      plan.bytes.insert(plan.bytes.end(), prefix.begin() + done, prefix.begin() + done + take);
      done += take;
      in_chunk += take;
      continue;
    }
    add_own(from);
    from = plan.bytes.size();
    if (done == length) break;  // an empty body: the header alone
    const std::size_t at = done - prefix.size();
    const std::size_t take = std::min(payload.size() - at, chunk_size_ - in_chunk);
    plan.pieces.push_back({source, at, take});
    done += take;
    in_chunk += take;
  }
  add_own(from);
}

void ChunkWriter::set_chunk_size(std::uint32_t size, std::vector<std::byte>& out) {
  SF_CHECK(size >= 1 && size <= 0x7FFFFFFF);
  std::uint8_t body[4];
  store_u32(body, size);
  write(2, kSetChunkSize, 0, 0, ByteView(reinterpret_cast<const std::byte*>(body), 4), out);
  chunk_size_ = size;
}

}  // namespace sf::rtmp
