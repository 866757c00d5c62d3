<?php
// A PHP client (pecl gearman) calling gearq tasks through the JSON envelope of
// docs/wire-format.md. The tasks are in examples/interop_worker.py; run both with
//
//     python examples/interop_worker.py php examples/php_client.php
//
// or, with a worker already serving: php examples/php_client.php HOST:PORT
// (the default is the first server of GEARQ_SERVERS, else 127.0.0.1:4730).

$spec = $argv[1] ?? (explode(',', getenv('GEARQ_SERVERS') ?: '127.0.0.1:4730')[0]);
[$host, $port] = array_pad(explode(':', trim($spec)), 2, '4730');

$client = new GearmanClient();
$client->addServer($host, intval($port));   // also sends OPTION_REQ "exceptions"
$client->setTimeout(15000);                 // ms: never wait forever

// gearq's call envelope: version, task name, positional and keyword arguments.
function call_envelope(string $task, array $args, array $kwargs = []): string {
    return json_encode(['v' => 1, 't' => $task, 'a' => $args, 'k' => (object) $kwargs]);
}

// A foreground unique in gearq's namespace ("f:"), so it never joins a background job.
function foreground_unique(): string {
    return 'f:php-' . bin2hex(random_bytes(12));
}

// 1. A simple call. doNormal returns the WORK_COMPLETE payload: a result envelope.
$reply = json_decode(
    $client->doNormal('shop.add', call_envelope('shop.add', [2, 3], ['scale' => 10]),
                      foreground_unique()),
    true
);
if ($client->returnCode() !== GEARMAN_SUCCESS || $reply['s'] !== 'ok') {
    fwrite(STDERR, "shop.add failed\n");
    exit(1);
}
printf("shop.add(2, 3, scale=10) = %s\n", json_encode($reply['r']));

// 2. The task API sees everything a job sends: progress, streamed chunks, warnings, and
//    the final reply (or the failure envelope, in WORK_EXCEPTION).
$client->setStatusCallback(function (GearmanTask $t) {
    printf("  progress %d/%d\n", $t->taskNumerator(), $t->taskDenominator());
});
$client->setDataCallback(function (GearmanTask $t) {
    $chunk = json_decode($t->data(), true);            // {"v":1,"s":"chunk","d":...}
    printf("  chunk %s\n", json_encode($chunk['d']));
});
$client->setWarningCallback(function (GearmanTask $t) {
    printf("  warning: %s\n", $t->data());
});
$client->setCompleteCallback(function (GearmanTask $t) {
    $reply = json_decode($t->data(), true);
    printf("%s -> %s\n", $t->functionName(), json_encode($reply['r']));
});
$client->setExceptionCallback(function (GearmanTask $t) {
    $failure = json_decode($t->data(), true);          // {"s":"err","type":...,"msg":...}
    printf("%s raised %s: %s\n", $t->functionName(), $failure['type'], $failure['msg']);
});
$client->setFailCallback(function (GearmanTask $t) {
    printf("%s failed without a reason (WORK_FAIL)\n", $t->functionName());
});

$client->addTask('shop.count', call_envelope('shop.count', [3]), null, foreground_unique());
$client->runTasks();
$client->addTask('shop.fail', call_envelope('shop.fail', ['bad']), null, foreground_unique());
$client->runTasks();

// 3. Fire and forget: a background job, with a unique in gearq's background namespace.
$client->doBackground('shop.add', call_envelope('shop.add', [1, 1]),
                      'b:php-' . bin2hex(random_bytes(12)));
printf("background shop.add queued: %s\n",
       $client->returnCode() === GEARMAN_SUCCESS ? 'yes' : 'no');
