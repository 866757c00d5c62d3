<?php
// A PHP client (php-gearman) calling gearq tasks through the documented JSON envelope
// (docs/wire-format.md). Prints one JSON object with what it got back.
// Usage: php php_task_client.php <port>
$port = intval($argv[1]);
$client = new GearmanClient();
$client->addServer("127.0.0.1", $port);   // also turns on the "exceptions" option
$client->setTimeout(15000);
$out = [];

// 1. A plain call: doNormal returns the WORK_COMPLETE payload, a result envelope.
$call = json_encode(["v" => 1, "t" => "interop.add", "a" => [2, 3], "k" => ["scale" => 10]]);
$reply = $client->doNormal("interop.add", $call);
$out["add"] = json_decode($reply, true);
$out["add_rc"] = $client->returnCode();

// 2. Keyword arguments only, PHP's empty array for no kwargs, unicode strings.
$call = json_encode(["v" => 1, "t" => "interop.greet", "a" => ["Zoë"], "k" => []]);
$out["greet"] = json_decode($client->doNormal("interop.greet", $call), true);

// 3. Task API: progress, streamed chunks, warnings, then the result.
$events = [];
$client->setStatusCallback(function ($t) use (&$events) {
    $events[] = ["status", $t->taskNumerator(), $t->taskDenominator()];
});
$client->setDataCallback(function ($t) use (&$events) {
    $events[] = ["data", json_decode($t->data(), true)];
});
$client->setWarningCallback(function ($t) use (&$events) { $events[] = ["warning", $t->data()]; });
$client->setCompleteCallback(function ($t) use (&$events) {
    $events[] = ["complete", json_decode($t->data(), true)];
});
$client->setExceptionCallback(function ($t) use (&$events) {
    $events[] = ["exception", json_decode($t->data(), true)];
});
$client->setFailCallback(function ($t) use (&$events) { $events[] = ["fail"]; });
$client->addTask("interop.count", json_encode(["v" => 1, "t" => "interop.count", "a" => [3]]));
// 4. A task that raises: the failure envelope arrives as WORK_EXCEPTION.
$client->addTask("interop.fail", json_encode(["v" => 1, "t" => "interop.fail", "a" => ["bad"]]));
$client->runTasks();
$out["events"] = $events;

// 5. Background submit, then status by unique while it is queued or running.
$unique = "b:php-" . getmypid();
$client->doBackground("interop.add", json_encode(["v" => 1, "a" => [1, 1]]), $unique);
$out["background_rc"] = $client->returnCode();

echo json_encode($out), "\n";
