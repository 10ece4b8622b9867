package daemon

// TestCMS is testCMS for the tests of package daemon_test.
var TestCMS = testCMS
