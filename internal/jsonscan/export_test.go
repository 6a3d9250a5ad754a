package jsonscan

// PlainRun is plainRun, for the tests.
var PlainRun = plainRun
