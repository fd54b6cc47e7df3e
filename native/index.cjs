// The compiled addon (build/Release/c2f_native.node); throws when it was not built.
module.exports = require('./build/Release/c2f_native.node');
