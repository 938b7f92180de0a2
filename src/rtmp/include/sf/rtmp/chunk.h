// RTMP chunk stream (RTMP 1.0 5.3): reassembling messages from a publisher's chunks, and writing
// the server's own messages as chunks. One ChunkReader/ChunkWriter per connection, one thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "sf/core/bytes.h"
#include "sf/core/result.h"

namespace sf::rtmp {

enum MessageType : std::uint8_t {
  kSetChunkSize = 1,
  kAbort = 2,
  kAcknowledgement = 3,
  kUserControl = 4,
  kWindowAckSize = 5,
  kSetPeerBandwidth = 6,
  kAudio = 8,
  kVideo = 9,
  kAmf3Data = 15,
  kAmf3SharedObject = 16,
  kAmf3Command = 17,
  kAmf0Data = 18,
  kAmf0SharedObject = 19,
  kAmf0Command = 20,
  kAggregate = 22,
};

struct Message {
  std::uint8_t type = 0;
  std::uint32_t stream_id = 0;  // message stream id
  std::uint32_t csid = 0;       // chunk stream it arrived on
  std::uint32_t timestamp = 0;  // ms, absolute (deltas applied), 32-bit as on the wire (wraps)
  Bytes body;                   // its own block; slices of it may outlive the reader
};

struct ChunkLimits {
  std::uint32_t max_message_size = 8 * 1024 * 1024;  // a larger declared length: message_too_large
  std::uint32_t max_chunk_size = 16 * 1024 * 1024;   // Set Chunk Size above this: limit_exceeded
  std::uint32_t max_chunk_streams = 64;              // distinct csids with state: limit_exceeded
  std::size_t max_pending_bytes = 32 * 1024 * 1024;  // sum of partially received messages
};

class ChunkReader {
 public:
  explicit ChunkReader(ChunkLimits limits = {}) : limits_(limits) {}

  // Consumes as many whole chunks from `in` as it can and returns how many bytes it consumed; the
  // caller keeps the rest and calls again with more. Completed messages are appended to `out`.
  // Set Chunk Size (type 1) and Abort (type 2) take effect inside this call, at the point they
  // complete, and are also appended to `out`. Any error is final for the connection.
  // Extended timestamps are honoured on type 0-2 chunks and on type-3 chunks that follow them;
  // a type-3 chunk whose 4 bytes do not repeat the stored extended value is read without them
  // (encoders disagree on this point; RTMP 5.3.1.3).
  Result<std::size_t> feed(ByteView in, std::vector<Message>& out);

  std::uint32_t chunk_size() const { return chunk_size_; }

 private:
  struct StreamState;
  Result<std::size_t> read_chunk(const std::uint8_t* p, std::size_t n, std::vector<Message>& out);
  Result<void> apply_control(const Message& m);
  Result<StreamState*> stream(std::uint32_t csid);
  StreamState* find_stream(std::uint32_t csid) const;

  ChunkLimits limits_;
  std::uint32_t chunk_size_ = 128;
  std::size_t pending_bytes_ = 0;
  std::error_code error_;                       // first error; every later feed() repeats it
  std::array<StreamState*, 64> low_streams_{};  // csid 2-63 (one-byte basic header) into streams_
  // The inline constructor potentially invokes ~vector, which needs a deleter that is declared here
  // and defined beside StreamState in chunk.cpp (default_delete would need the complete type).
  struct StreamStateDelete {
    void operator()(StreamState* s) const noexcept;
  };
  std::vector<std::unique_ptr<StreamState, StreamStateDelete>> streams_;  // per-csid state
 public:
  ~ChunkReader();
  ChunkReader(ChunkReader&&) noexcept;
};

// Chunks of messages laid out for a gather write, so media is never copied: chunk headers (and
// small body prefixes) go into `bytes`; `pieces` lists, in wire order, spans of `bytes`
// (source -1) or of the caller's payload buffer number `source`.
struct ChunkPlan {
  struct Piece {
    int source = -1;
    std::size_t offset = 0;
    std::size_t size = 0;
  };
  std::vector<std::byte> bytes;
  std::vector<Piece> pieces;
  void clear() {
    bytes.clear();
    pieces.clear();
  }
};

class ChunkWriter {
 public:
  // Appends `body` as one message in chunks of the current outgoing chunk size (fmt 0, then fmt 3).
  void write(std::uint32_t csid, std::uint8_t type, std::uint32_t stream_id, std::uint32_t timestamp, ByteView body,
             std::vector<std::byte>& out) const;
  // The same chunks as write() for the body `prefix` + `payload`, planned into `plan` without
  // copying `payload` (the caller's buffer number `source`, which must outlive the write).
  void plan(std::uint32_t csid, std::uint8_t type, std::uint32_t stream_id, std::uint32_t timestamp, ByteView prefix,
            ByteView payload, int source, ChunkPlan& plan) const;
  // Writes a Set Chunk Size message and switches to the new size for later messages.
  void set_chunk_size(std::uint32_t size, std::vector<std::byte>& out);
  std::uint32_t chunk_size() const { return chunk_size_; }

 private:
  std::uint32_t chunk_size_ = 128;
};

}  // namespace sf::rtmp
