/// Every file of this test target sees the shared test support (temporary directories, programs,
/// fixture builds, `FixtureError`) as it would helpers of its own, without an import each.
@_exported import TestSupport
