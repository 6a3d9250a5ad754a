package jsonscan

// PlainRun is plainRun, for the tests.
var PlainRun = plainRun

// PlainRunHTML is plainRunHTML, for the tests.
var PlainRunHTML = plainRunHTML
