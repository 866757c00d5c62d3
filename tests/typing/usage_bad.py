"""Wrong use of the task API: mypy must report an error on each line marked ``# E:``
(with that text in the message) and on no other line (tests/typing)."""

from __future__ import annotations

from gearq import App, TaskContext, group

app = App("typing", env=False)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True)
def bound(ctx: TaskContext, n: int) -> str:
    return str(n)


add.delay("1", 2)  # E: Argument 1 to "delay" of "Task" has incompatible type "str"; expected "int"
add.delay(1)  # E: Missing positional argument "y" in call to "delay" of "Task"
add.delay(1, 2, 3)  # E: Too many arguments for "delay" of "Task"
add.delay(1, z=2)  # E: Unexpected keyword argument "z" for "delay" of "Task"
add(1, "2")  # E: Argument 2 to "__call__" of "Task" has incompatible type "str"; expected "int"
text: str = add.delay(1, 2).get()  # E: Incompatible types in assignment (expression has type "int", variable has type "str")
bound.delay(TaskContext, 1)  # E: Too many arguments for "delay" of "Task"
group(add.s(1))  # E: No overload variant of "group" matches argument type "PartialSignature[int]"
add.send(x=1, y="2")  # E: Argument "y" to "send" of "Task" has incompatible type "str"; expected "int"


@app.task(bind=True)  # E: expected "Callable[[TaskContext]
def not_bound(n: int) -> int:
    return n


async def misuse() -> None:
    result = await add.adelay(1, "x")  # E: Argument 2 to "adelay" of "Task" has incompatible type "str"; expected "int"
    number: bytes = await result  # E: Incompatible types in assignment (expression has type "int", variable has type "bytes")
    print(number)
