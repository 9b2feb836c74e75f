// The emulator's HTTP/1.1 request reader on arbitrary bytes, delivered in
// arbitrary pieces: RequestReader::Next, then ParseForm of each body.
// Invariants: every request stays within the head and body limits; an
// error is answered by ResponseForReadError with a 4xx or nothing.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "emulator/internal/http.h"
#include "fuzz/fuzz_util.h"

namespace {

using certstore::emulator::internal::Conn;

// A connection whose peer sends the fuzz input in pieces, then closes.
class FuzzConn final : public Conn {
 public:
  explicit FuzzConn(FuzzedDataProvider* input) : input_(input) {}
  absl::StatusOr<size_t> Read(char* buf, size_t size,
                              absl::Time deadline) override {
    const size_t piece =
        std::min<size_t>(size, input_->ConsumeIntegralInRange<size_t>(1, 4096));
    const std::string bytes = input_->ConsumeBytesAsString(piece);
    std::copy(bytes.begin(), bytes.end(), buf);
    return bytes.size();  // 0 when the input is used up: end of stream
  }
  absl::Status Write(absl::string_view data, absl::Time deadline) override {
    return absl::OkStatus();
  }

 private:
  FuzzedDataProvider* input_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using certstore::fuzz::Check;
  namespace emu = certstore::emulator::internal;
  FuzzedDataProvider input(data, size);
  FuzzConn conn(&input);
  emu::RequestReader reader(&conn);
  const absl::Time far = absl::Now() + absl::Hours(1);
  for (int i = 0; i < 16; ++i) {
    absl::StatusOr<std::optional<emu::HttpRequest>> request =
        reader.Next(far, absl::Hours(1));
    if (!request.ok()) {
      std::optional<emu::HttpResponse> answer =
          emu::ResponseForReadError(request.status());
      Check(!answer.has_value() ||
                (answer->status >= 400 && answer->status < 500),
            "a read error answered with a non-4xx");
      return 0;
    }
    if (!request->has_value()) {
      return 0;
    }
    const emu::HttpRequest& r = **request;
    Check(!r.method.empty(), "a request without a method");
    Check(r.body.size() <= emu::kMaxBodyBytes, "a body over the limit");
    (void)emu::ParseForm(r.body);
    if (!r.keep_alive) {
      return 0;
    }
  }
  return 0;
}
