// One RTMP connection from accept to close: handshake, chunk stream, commands, and (once publish
// is granted) media to observers. Lives on the io_context that accepted it; only its own
// coroutines touch it, except close(), which posts itself to that context.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "live_stream.h"
#include "relay.h"
#include "sf/media/flv.h"
#include "sf/rtmp/amf0.h"
#include "sf/rtmp/chunk.h"
#include "shared_state.h"
#include "timeline.h"

namespace sf::ingest {

namespace asio = boost::asio;

class Session : public std::enable_shared_from_this<Session>, private media::FlvDemuxer::Output {
 public:
  Session(asio::ip::tcp::socket socket, SharedState& shared);
  ~Session() override;

  static void start(std::shared_ptr<Session> self);
  // Ends the session with `reason`; any thread.
  void close(std::string_view reason);
  std::uint64_t id() const { return id_; }

 private:
  enum class Phase { handshake, connecting, connected, publishing, closed };
  struct PublishRequest {
    double txn = 0;
    std::uint32_t stream_id = 0;
    std::string name;
  };

  asio::awaitable<void> run();
  asio::awaitable<void> watchdog();
  asio::awaitable<bool> handshake();
  asio::awaitable<bool> flush();
  asio::awaitable<void> publish(PublishRequest req);

  // Handles one message; may queue replies in out_ and a publish request in pending_publish_.
  Result<void> on_message(const rtmp::Message& m);
  Result<void> on_command(const rtmp::Message& m, const std::vector<rtmp::amf0::Value>& args);
  Result<void> on_media(std::uint8_t type, std::uint32_t timestamp, const Bytes& body);
  Result<void> on_aggregate(const rtmp::Message& m);
  void on_data(const std::vector<rtmp::amf0::Value>& args);

  void send_command(std::uint32_t csid, std::uint32_t stream_id, std::initializer_list<rtmp::amf0::Value> values);
  void send_control(std::uint8_t type, std::uint32_t value);
  void send_status(std::uint32_t stream_id, const char* level, const char* code, std::string description);
  void fail_with(std::string_view reason);
  void end_publish(std::string_view reason);

  // FlvDemuxer::Output
  void on_track(const media::TrackConfig& track) override;
  void on_frame(media::MediaFrame&& frame) override;

  asio::ip::tcp::socket socket_;
  SharedState& shared_;
  const std::uint64_t id_;
  std::string remote_;
  Phase phase_ = Phase::handshake;
  std::string close_reason_;

  std::vector<std::byte> in_;
  std::size_t in_used_ = 0;
  std::vector<std::byte> out_;
  rtmp::ChunkReader reader_;
  rtmp::ChunkWriter writer_;
  std::vector<rtmp::Message> messages_;

  std::chrono::steady_clock::time_point deadline_;  // handshake, then idle
  asio::steady_timer timer_;

  std::uint32_t received_ = 0;  // bytes, wrapping as RTMP acknowledgements do
  std::uint32_t last_ack_ = 0;
  std::uint32_t peer_window_ = 0;  // from the peer's Window Acknowledgement Size
  std::uint32_t next_stream_id_ = 1;
  std::string app_;
  std::string app_query_;
  bool enhanced_client_ = false;
  std::optional<PublishRequest> pending_publish_;

  std::shared_ptr<LiveStream> live_;
  std::vector<std::unique_ptr<PublishHandler>> handlers_;
  std::optional<media::FlvDemuxer> demuxer_;
  std::optional<Timeline> timeline_;
  std::uint32_t epoch_ = 0;     // the timeline's epoch for the message being demuxed
  bool trusted_relay_ = false;  // the publish is an authenticated relay (PublishGrant::relay)
  bool relay_epoch_refused_ = false;
  RelayedEpoch relayed_epoch_;  // the jumps before the relay, from its "@streamflex" messages
  int low_water_ = 0;           // current SO_RCVLOWAT
  std::chrono::steady_clock::time_point low_water_checked_{};
  void adjust_low_water();
};

}  // namespace sf::ingest
