<?php
// A php-gearman client for test_interop.py: prints one JSON object with what it saw.
// addServer() turns on the "exceptions" option, so WORK_EXCEPTION reaches the callbacks.
$port = intval($argv[1]);
$client = new GearmanClient();
$client->addServer("127.0.0.1", $port);
$client->setTimeout(10000);
$out = [];

$out["doNormal"] = [$client->doNormal("echo", "hello"), $client->returnCode()];
$result = $client->doNormal("boom", "x");
$out["doNormalException"] = [$result === "" ? null : $result, $client->error() ?: null];

$events = [];
$client->setStatusCallback(function ($t) use (&$events) {
    $events[] = ["status", $t->taskNumerator(), $t->taskDenominator()];
});
$client->setDataCallback(function ($t) use (&$events) { $events[] = ["data", $t->data()]; });
$client->setWarningCallback(function ($t) use (&$events) {
    $events[] = ["warning", $t->data()];
});
$client->setCompleteCallback(function ($t) use (&$events) {
    $events[] = ["complete", $t->data(), $t->unique()];
});
$client->setExceptionCallback(function ($t) use (&$events) {
    $events[] = ["exception", $t->data()];
});
$client->setFailCallback(function ($t) use (&$events) {
    $events[] = ["fail", $t->functionName()];
});
$client->addTask("echo", "task1", null, "php-unique");
$client->addTask("boom", "task2");
$client->addTask("failing", "task3");
if (!$client->runTasks()) {
    fwrite(STDERR, "runTasks: " . $client->error() . "\n");
    exit(1);
}
$out["events"] = $events;
echo json_encode($out), "\n";
