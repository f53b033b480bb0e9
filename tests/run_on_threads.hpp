// The tests' thread runner: every thread-safety test starts its threads and collects their failures the same way.
#pragma once
#include <exception>
#include <string>
#include <thread>
#include <vector>

// Runs body(t) for t = 0 .. count-1, each on a thread of its own, all at once; returns what each threw (empty: ran
// through), so the test reports every thread's failure after all joined.
template <class Body>
std::vector<std::string> run_on_threads(size_t count, Body body) {
  std::vector<std::string> failures(count);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < count; ++t)
    threads.emplace_back([&, t] {
      try {
        body(t);
      } catch (const std::exception& e) {
        failures[t] = e.what();
      }
    });
  for (auto& thread : threads) thread.join();
  return failures;
}
